#!/bin/sh
# run.sh BUILD_DIR — `make bench`: end-to-end throughput of sluiced against
# the ceiling (smtp-source straight into sluice-sink), side by side in one
# run, inside a private network namespace. See bench/e2e_bench.py.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${SLUICE_NETNS:-}" ]; then
	exec "$root/tests/netns.sh" "$0" "$@"
fi
exec /usr/bin/python3 "$root/bench/e2e_bench.py" --build "$root/${1:-build}" \
	--messages "${BENCH_MESSAGES:-20000}" --sessions "${BENCH_SESSIONS:-20}"
