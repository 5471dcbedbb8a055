#!/bin/sh
# run.sh SECONDS TARGET...  — run each libFuzzer target for SECONDS.
# Seeds come from tests/fuzz/corpus/NAME when present; what a run learns is
# kept in build-fuzz/corpus/NAME (not in the tree). A crash fails the run
# and leaves the reproducer in build-fuzz/.
set -eu
secs=$1
shift
fails=0
for t in "$@"; do
	name=$(basename "$t")
	corpus=build-fuzz/corpus/$name
	mkdir -p "$corpus"
	seeds=tests/fuzz/corpus/${name#fuzz_}
	[ -d "$seeds" ] || seeds=""
	printf 'fuzz %-24s %ss ... ' "$name" "$secs"
	if "$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix=build-fuzz/"$name"- "$corpus" $seeds \
		>build-fuzz/"$name".log 2>&1; then
		echo "ok ($(grep -o 'cov: [0-9]*' build-fuzz/"$name".log | tail -1))"
	else
		echo "FAILED (see build-fuzz/$name.log)"
		tail -30 build-fuzz/"$name".log
		fails=$((fails + 1))
	fi
done
[ "$fails" = 0 ]
