#!/bin/sh
# dpdk.sh [PYTEST-ARGS...] — the dpdk transport's e2e tests (make test-dpdk),
# run inside the namespace tests/netns.sh makes. Exits 77 when they were
# skipped (no TAP port could be made): a skip is never reported as a pass.
set -u
out=$(mktemp)
/usr/bin/python3 -m pytest -q -rs tests/e2e/test_dpdk.py "$@" >"$out" 2>&1
rc=$?
cat "$out"
if [ "$rc" = 0 ] && grep -q "DPDK TRANSPORT NOT TESTED" "$out"; then
	echo "dpdk.sh: the DPDK tests were SKIPPED (see above): exit 77" >&2
	rc=77
fi
rm -f "$out"
exit "$rc"
