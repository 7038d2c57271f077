#!/bin/sh
# installer/install.sh — installs Gatehouse on a fresh Debian 12 from the two .deb packages that
# installer/build-debs.sh makes, and starts the service.
#
# usage: sudo installer/install.sh [--server-only] [DIR]
#   DIR            where the .deb files are (default: ./dist, else the directory of this script)
#   --server-only  install gatehouse-server only (a headless machine: no desktop manager)
# apt installs the packages' dependencies (the manager needs WebKitGTK); with no network, the
# dependencies must already be present. Then systemd enables and starts gatehoused. On first start
# gatehoused makes the postmaster account with a random password and logs it once:
#   journalctl -u gatehoused | grep -i password
set -eu

SERVER_ONLY=0
DIR=
for a in "$@"; do
    case $a in
        --server-only) SERVER_ONLY=1 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        -*) echo "install.sh: unknown option $a" >&2; exit 2 ;;
        *) DIR=$a ;;
    esac
done
if [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: run as root (sudo $0 $*)" >&2
    exit 1
fi
if [ -z "$DIR" ]; then
    if ls ./dist/gatehouse-server_*.deb >/dev/null 2>&1; then DIR=./dist; else DIR=$(dirname "$0"); fi
fi
newest() { ls -t "$DIR"/"$1"_*.deb 2>/dev/null | head -n1; }
SERVER_DEB=$(newest gatehouse-server)
MANAGER_DEB=$(newest gatehouse-manager)
[ -n "$SERVER_DEB" ] || { echo "install.sh: no gatehouse-server_*.deb in $DIR (build them with installer/build-debs.sh)" >&2; exit 1; }
DEBS="$SERVER_DEB"
if [ "$SERVER_ONLY" -eq 0 ]; then
    [ -n "$MANAGER_DEB" ] || { echo "install.sh: no gatehouse-manager_*.deb in $DIR (or use --server-only)" >&2; exit 1; }
    DEBS="$DEBS $MANAGER_DEB"
fi

# apt wants paths with a slash to take them as files, not package names.
ARGS=
for d in $DEBS; do
    case $d in /*) ;; *) d=$(pwd)/$d ;; esac
    ARGS="$ARGS $d"
done
export DEBIAN_FRONTEND=noninteractive
echo "Installing:$ARGS"
if ! apt-get install -y --no-install-recommends $ARGS; then
    echo "apt-get could not install them as they are; refreshing the package lists and trying again"
    apt-get update
    apt-get install -y --no-install-recommends $ARGS
fi

if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable --now gatehoused
    systemctl --no-pager --lines=0 status gatehoused || true
    echo
    echo "Gatehouse is running. The postmaster password of a new installation is in the log:"
    echo "  journalctl -u gatehoused | grep -i password"
else
    echo "systemd is not running here: start the service by hand (as root) with"
    echo "  setpriv --reuid=gatehouse --regid=gatehouse --init-groups --inh-caps=+net_bind_service \\"
    echo "      --ambient-caps=+net_bind_service /usr/bin/gatehoused --base /var/lib/gatehouse"
fi
if [ "$SERVER_ONLY" -eq 0 ]; then
    echo "The desktop manager is in the applications menu (Gatehouse Manager) and starts at login."
fi
