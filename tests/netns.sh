#!/bin/sh
# netns.sh CMD...  — run CMD inside a fresh, private network namespace that
# holds sluice's test network, then remove the namespace.
#
# Everything lives on the namespace's loopback device, so no packet ever
# leaves it:
#   198.51.100.10, .11      the appliance's source IPs (pool "default")
#   198.51.100.53           the DNS server (unbound, started by the caller)
#   198.51.100.99           an outside client that must not relay
#   203.0.113.25 .. .29     receivers (sluice-sink), one per emulated provider
# These are documentation ranges (RFC 5737); the host's own range is never used.
set -eu
[ "$(id -u)" = 0 ] || { echo "netns.sh: needs root (ip netns)" >&2; exit 77; }
ns="sluice-$$-$(date +%s)"
ip netns add "$ns"
trap 'ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null; ip netns delete "$ns" 2>/dev/null || true' EXIT INT TERM
ip -n "$ns" link set lo up
for a in 198.51.100.10 198.51.100.11 198.51.100.12 198.51.100.53 198.51.100.99 \
	 203.0.113.25 203.0.113.26 203.0.113.27 203.0.113.28 203.0.113.29; do
	ip -n "$ns" addr add "$a/32" dev lo
done
export SLUICE_NETNS="$ns"
ip netns exec "$ns" "$@"
