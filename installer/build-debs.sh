#!/usr/bin/env bash
# installer/build-debs.sh — builds the two Debian packages of Gatehouse, offline, with dpkg-deb:
#   gatehouse-server   /usr/bin/gatehoused, /usr/bin/gatehouse, the systemd unit, a postinst that
#                      creates the `gatehouse` system user and /var/lib/gatehouse
#   gatehouse-manager  /usr/bin/gatehouse-manager, its desktop entry, autostart entry and icons
#
# usage: installer/build-debs.sh [--out DIR] [--version VER] GATEHOUSED GATEHOUSE GATEHOUSE_MANAGER
#        installer/build-debs.sh [--out DIR] [--version VER] BINDIR      (holding the three binaries)
# The binaries may be release or debug builds; debug information is stripped from the packaged
# copies. The version defaults to the workspace's (Cargo.toml). Prints the paths of the .deb files.
# Needs only dpkg-deb and binutils' strip (both on any Debian with build-essential); no network.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
OUT=$PWD/dist
VERSION=

die() { echo "build-debs: $*" >&2; exit 2; }

while (($#)); do
    case $1 in
        --out) OUT=${2:?--out needs a directory}; shift 2 ;;
        --version) VERSION=${2:?--version needs a value}; shift 2 ;;
        -h|--help) sed -n '2,12p' "${BASH_SOURCE[0]}"; exit 0 ;;
        --) shift; break ;;
        -*) die "unknown option $1" ;;
        *) break ;;
    esac
done

if (($# == 1)) && [[ -d $1 ]]; then
    set -- "$1/gatehoused" "$1/gatehouse" "$1/gatehouse-manager"
fi
(($# == 3)) || die "give the gatehoused, gatehouse and gatehouse-manager binaries (or one directory holding them)"
for b in "$@"; do [[ -x $b ]] || die "$b is not an executable file"; done
SERVERD=$1 CLIENT=$2 MANAGER=$3

command -v dpkg-deb >/dev/null || die "dpkg-deb not found (Debian package dpkg)"
if [[ -z $VERSION ]]; then
    VERSION=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -n1)
    [[ -n $VERSION ]] || die "cannot read the version from $ROOT/Cargo.toml; give --version"
fi
ARCH=$(dpkg --print-architecture)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# Copies a binary into the package tree without its debug information.
put_bin() {
    install -D -m 0755 "$1" "$2"
    strip --strip-debug "$2" 2>/dev/null || true
}

# Writes DEBIAN/control with the installed size and builds the package.
build() {
    local dir=$1 name=$2 depends=$3 recommends=$4 description=$5
    local size
    size=$(du -sk --exclude=DEBIAN "$dir" | cut -f1)
    {
        echo "Package: $name"
        echo "Version: $VERSION"
        echo "Architecture: $ARCH"
        echo "Maintainer: Gatehouse developers <postmaster@localhost>"
        echo "Installed-Size: $size"
        echo "Depends: $depends"
        [[ -n $recommends ]] && echo "Recommends: $recommends"
        echo "Section: mail"
        echo "Priority: optional"
        echo "Description: $description"
    } >"$dir/DEBIAN/control"
    local deb=$OUT/${name}_${VERSION}_${ARCH}.deb
    dpkg-deb --root-owner-group -Zxz -z6 --build "$dir" "$deb" >/dev/null
    echo "$deb"
}

# ---------------------------------------------------------------- gatehouse-server
S=$WORK/server
mkdir -p "$S/DEBIAN"
put_bin "$SERVERD" "$S/usr/bin/gatehoused"
put_bin "$CLIENT" "$S/usr/bin/gatehouse"
install -D -m 0644 "$HERE/gatehoused.service" "$S/lib/systemd/system/gatehoused.service"
install -D -m 0644 "$ROOT/README.md" "$S/usr/share/doc/gatehouse-server/README.md"
[[ -f $ROOT/docs/cli.md ]] && install -D -m 0644 "$ROOT/docs/cli.md" "$S/usr/share/doc/gatehouse-server/cli.md"

cat >"$S/DEBIAN/postinst" <<'SH'
#!/bin/sh
# gatehouse-server postinst: the service's user and base directory; systemd learns the unit.
set -e
if [ "$1" = configure ]; then
    if ! getent group gatehouse >/dev/null; then
        groupadd --system gatehouse
    fi
    if ! getent passwd gatehouse >/dev/null; then
        useradd --system --gid gatehouse --home-dir /var/lib/gatehouse --no-create-home \
            --shell /usr/sbin/nologin --comment "Gatehouse messaging server" gatehouse
    fi
    install -d -o gatehouse -g gatehouse -m 0750 /var/lib/gatehouse
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload >/dev/null 2>&1 || true
        # An upgrade restarts a running service on the new binaries.
        if systemctl is-active --quiet gatehoused; then
            systemctl restart gatehoused || true
        fi
    fi
fi
exit 0
SH
cat >"$S/DEBIAN/prerm" <<'SH'
#!/bin/sh
# gatehouse-server prerm: stop the service before its files go (not on upgrade).
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl stop gatehoused >/dev/null 2>&1 || true
    systemctl disable gatehoused >/dev/null 2>&1 || true
fi
exit 0
SH
cat >"$S/DEBIAN/postrm" <<'SH'
#!/bin/sh
# gatehouse-server postrm: the base directory (all mail and settings) is kept, even on purge;
# remove /var/lib/gatehouse and the `gatehouse` user by hand when they are no longer wanted.
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
SH
chmod 0755 "$S/DEBIAN/postinst" "$S/DEBIAN/prerm" "$S/DEBIAN/postrm"
build "$S" gatehouse-server "libc6 (>= 2.34), libgcc-s1, passwd" "" \
    "Gatehouse messaging server
 A single-site mail server for small offices and dial-up sites: SMTP, POP3, IMAP,
 WebAdmin and the CLI over the PWD protocol. This package holds the gatehoused
 service (run by systemd as the gatehouse user, base directory /var/lib/gatehouse)
 and the gatehouse command-line client."

# ---------------------------------------------------------------- gatehouse-manager
M=$WORK/manager
mkdir -p "$M/DEBIAN"
put_bin "$MANAGER" "$M/usr/bin/gatehouse-manager"
install -D -m 0644 "$HERE/gatehouse-manager.desktop" "$M/usr/share/applications/gatehouse-manager.desktop"
install -D -m 0644 "$HERE/gatehouse-manager-autostart.desktop" "$M/etc/xdg/autostart/gatehouse-manager.desktop"
install -D -m 0644 "$ROOT/src-gui/icons/32x32.png" "$M/usr/share/icons/hicolor/32x32/apps/gatehouse-manager.png"
install -D -m 0644 "$ROOT/src-gui/icons/128x128.png" "$M/usr/share/icons/hicolor/128x128/apps/gatehouse-manager.png"
install -D -m 0644 "$ROOT/src-gui/icons/128x128@2x.png" "$M/usr/share/icons/hicolor/256x256/apps/gatehouse-manager.png"
build "$M" gatehouse-manager \
    "libc6 (>= 2.34), libgcc-s1, libgtk-3-0, libwebkit2gtk-4.1-0, libsoup-3.0-0, libjavascriptcoregtk-4.1-0, libayatana-appindicator3-1" \
    "xdg-utils" \
    "Gatehouse desktop manager with a tray icon
 The office admin's tool for the Gatehouse messaging server: domains, accounts,
 the dial-up schedule, logs and the queue, and the service's state at a glance
 from the tray. It talks to gatehoused over the CLI channel (PWD, port 106)."
