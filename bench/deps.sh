#!/bin/sh
# deps.sh — Debian packages the benchmark needs beyond tests/deps.sh:
# postfix (smtp-source, and the Postfix peer), python3-yaml (scenarios),
# python3-matplotlib (plots). Idempotent and fast when all are there.
# Installing postfix may start its system instance; the benchmark runs its
# own private instance, so the system one is stopped again.
set -e
PKGS="postfix python3-yaml python3-matplotlib"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "bench deps: installing$missing"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# postfix asks debconf how it is used; "No configuration" keeps it inert.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
$SUDO apt-get update -q || true
$SUDO apt-get install -y -q --no-install-recommends $missing
if [ -d /run/systemd/system ]; then
	$SUDO systemctl disable --now postfix >/dev/null 2>&1 || true
fi
$SUDO postfix stop >/dev/null 2>&1 || true
