#!/bin/sh
# run.sh [BUILD_DIR [SCENARIO...]] — `make bench`: install the benchmark's
# packages (tests/deps.sh plus the plotting library), then run each scenario (default: throughput-4k
# and throughput-100k) with bench/sluice_bench.py inside a private network
# namespace (tests/netns.sh). Results: bench/results/<timestamp>/ and
# bench/results/latest. See docs/bench.md.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${SLUICE_NETNS:-}" ]; then
	"$root/tests/deps.sh" python3-matplotlib
	exec "$root/tests/netns.sh" "$0" "$@"
fi
build=${1:-build}
case $build in /*) ;; *) build="$root/$build" ;; esac
[ $# -gt 0 ] && shift
[ $# -gt 0 ] || set -- throughput-4k throughput-100k
rc=0
for s in "$@"; do
	/usr/bin/python3 "$root/bench/sluice_bench.py" --build "$build" "$s" || rc=1
done
exit $rc
