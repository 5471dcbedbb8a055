#!/bin/sh
# demo.sh BUILD_DIR — `make demo`: sluiced on the shipped configuration
# (configs/sluice.yaml, with its paths moved to a scratch directory and demo
# passwords for its tenants) in a private network namespace with a real DNS
# server and emulated receivers; two tenants submit a workload over
# STARTTLS + AUTH; then a summary of what happened. Non-interactive, bounded.
set -eu
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${SLUICE_NETNS:-}" ]; then
	exec "$root/tests/netns.sh" "$0" "$@"
fi
COUNT=${DEMO_COUNT:-1500}
work=$(mktemp -d /tmp/sluice-demo.XXXXXX)
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	echo
	echo "demo files (config, spool, event log, received mail): $work"
}
trap cleanup EXIT INT TERM
say() { printf '\n== %s\n' "$*"; }

say "network namespace $SLUICE_NETNS: source IPs 198.51.100.10-11, DNS 198.51.100.53, receivers 203.0.113.25-29"
sed "s|@DIR@|$work|" "$root/tests/dns.conf.in" >"$work/unbound.conf"
/usr/sbin/unbound -d -c "$work/unbound.conf" 2>"$work/unbound.log" &
pids="$pids $!"

say "TLS certificate for the submission listener and the receivers"
mkdir -p "$work/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
	-subj /CN=sluice.demo.test -keyout "$work/tls/key.pem" -out "$work/tls/cert.pem" 2>/dev/null

say "receivers: sluice-sink emulating gmail.test, yahoo.test, outlook.test, example.test"
cat >"$work/sink.rules" <<'RULES'
# Gmail-like: an old address that no longer exists.
gmail.test    reject-user  olduser
# Yahoo-like: throttles a source IP that sends too fast; sluice retries later.
yahoo.test    rate-per-ip  200/10s 421 4.7.0 [TSS04] Messages from this IP temporarily deferred due to unexpected volume
# Microsoft-like: now and then busy.
outlook.test  fail-rate    3% 451 4.7.500 Server busy. Please try again later
RULES
"$root/$build/sluice-sink" -q -r "$work/sink.rules" -L "$work/received.jsonl" \
	--stats "$work/sink-stats.json" --tls-cert "$work/tls/cert.pem" --tls-key "$work/tls/key.pem" \
	-l 203.0.113.25:25 -l 203.0.113.26:25 -l 203.0.113.27:25 -l 203.0.113.28:25 \
	-l 203.0.113.29:25 2>"$work/sink.err" &
sink_pid=$!
pids="$pids $sink_pid"

say "sluiced on configs/sluice.yaml (paths moved under $work, demo passwords set)"
ACME_HASH=$("$root/$build/sluicectl" passwd acme-demo-pw)
GLOBEX_HASH=$("$root/$build/sluicectl" passwd globex-demo-pw)
/usr/bin/python3 - "$root/configs/sluice.yaml" "$work/sluice.yaml" "$work" "$ACME_HASH" "$GLOBEX_HASH" <<'PY'
import sys
src, dst, work, acme, globex = sys.argv[1:]
out, tenant = [], None
for line in open(src):
    s = line.strip()
    if s.startswith("- name:"):
        tenant = s.split(":", 1)[1].split("#")[0].strip()
    if s.startswith("password_hash:"):
        h = {"acme": acme, "globex": globex}[tenant]
        line = line[: line.index("password_hash:")] + f'password_hash: "{h}"\n'
    if "retry_schedule:" in s:  # retry quickly so the demo shows retries succeed
        line = line[: line.index("retry_schedule:")] + "retry_schedule: [2s, 5s, 10s]\n"
    out.append(line.replace("/var/lib/sluice", work).replace("/var/log/sluice", work))
open(dst, "w").write("".join(out))
PY
"$root/$build/sluiced" -n -c "$work/sluice.yaml"
"$root/$build/sluiced" -c "$work/sluice.yaml" 2>"$work/sluiced.log" &
sluiced_pid=$!
pids="$pids $sluiced_pid"
i=0
until /usr/bin/python3 -c 'import socket; socket.create_connection(("127.0.0.1", 2525), 1)' 2>/dev/null; do
	i=$((i + 1)); [ $i -lt 100 ] || { cat "$work/sluiced.log"; exit 1; }
	sleep 0.1
done

say "injecting: $COUNT messages each from tenants acme (transactional) and globex (marketing), 4 KiB, STARTTLS + AUTH"
/usr/bin/python3 "$root/tests/demo/inject.py" --count "$COUNT" --conns 4 \
	--password acme=acme-demo-pw --password globex=globex-demo-pw

say "waiting for the queue to drain (deferred mail is retried; at most 60 s)"
t=0
while [ $t -lt 120 ]; do
	q=$("$root/$build/sluicectl" stats | awk '$1=="sluice_queue_messages"{print $2}')
	[ "${q:-1}" = 0 ] && break
	sleep 0.5; t=$((t + 1))
done
"$root/$build/sluicectl" stats | grep -E '^sluice_(queue_|messages_accepted|recipient_outcomes|egress_(connections|starttls))' | sed 's/^/  /'

say "what happened (from the event log $work/events.jsonl)"
/usr/bin/python3 "$root/tests/demo/summary.py" "$work/events.jsonl"
kill "$sluiced_pid" "$sink_pid"
wait "$sluiced_pid" "$sink_pid" 2>/dev/null || true
say "receivers: $(wc -l <"$work/received.jsonl") messages received (the sink's own log)"
