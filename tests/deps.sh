#!/bin/sh
# deps.sh [EXTRA-PACKAGE...] — installs the Debian 12 packages that
# building, testing and the demo need (and any extra ones named, e.g. the
# benchmark's plotting library). Idempotent and fast when all are there.
set -e
PKGS="build-essential pkg-config clang libclang-rt-14-dev liburing-dev liblmdb-dev
lmdb-utils libssl-dev openssl libyaml-dev libunbound-dev libcmocka-dev libopendkim-dev
libsystemd-dev libspf2-dev libjansson-dev libmicrohttpd-dev libcurl4-openssl-dev libdpdk-dev dpdk
python3-pytest python3-dkim python3-yaml unbound iproute2 postfix ldnsutils $*"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# postfix is here for smtp-source (the load generator of the bench test);
# "No configuration" keeps the system instance inert.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
$SUDO apt-get update -q || true
$SUDO apt-get install -y -q --no-install-recommends $missing
# The unbound package enables a system resolver service; sluice's tests run
# their own instance in a namespace and do not need it.
if [ -d /run/systemd/system ]; then
	$SUDO systemctl disable --now unbound postfix >/dev/null 2>&1 || true
fi
$SUDO postfix stop >/dev/null 2>&1 || true
