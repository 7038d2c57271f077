#!/usr/bin/env bash
# tests/run-all.sh — the one test command: what a newcomer runs on a fresh Debian 12 machine, and what CI runs.
#
# Non-interactive and idempotent. It installs only what is missing (Debian packages checked with `dpkg -s`
# first, `apt-get update` only when something must be installed; pytest with pip only when missing), then runs:
#   fmt       cargo fmt --all -- --check
#   clippy    cargo clippy --workspace --all-targets -- -D warnings
#   build     cargo build -p gatehouse-server --bins -p gatehouse-manager   (once; the e2e suite reuses them)
#   test      cargo test --workspace
#   e2e       python3 -m pytest -q tests/e2e                  (GATEHOUSED / GATEHOUSE / GATEHOUSE_MANAGER point at
#             the built binaries; the installer test builds .debs and installs them with dpkg -i when root)
# Every stage runs even when an earlier one failed, except e2e, which needs the build. Exits non-zero on any
# failure and ends with a summary of each stage and its time. Honours CARGO_TARGET_DIR.
#
# The Rust toolchain (rustup with rustfmt and clippy) is expected on PATH: Debian's own rustc is too old.
# The GUI crate's unit tests use Tauri's mock runtime and need no display; xvfb, webkit2gtk-driver and
# tauri-driver (cargo install, once) are for the manager's end-to-end tests (tauri-driver under Xvfb,
# shared/notes/tauri-on-debian.md); dpkg-dev and desktop-file-utils for the installer's.

set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
ROOT=$PWD

# Debian packages: the Tauri build and run-time libraries (shared/notes/tauri-on-debian.md), Xvfb, Python.
APT_PACKAGES=(
    build-essential pkg-config
    libwebkit2gtk-4.1-dev libayatana-appindicator3-dev
    xvfb xauth imagemagick webkit2gtk-driver trayer xdotool
    dpkg-dev desktop-file-utils
    python3 tmux openssl swaks curl chromium chromium-driver mutt
    fetchmail dovecot-pop3d dovecot-imapd
    tzdata
)

declare -a SUMMARY=()
FAILED=0

say() { printf '\n==> %s\n' "$*"; }

# Runs one stage: prints its command, times it, records PASS/FAIL in the summary.
run_stage() {
    local name=$1
    shift
    say "$name: $*"
    local t0=$EPOCHREALTIME
    "$@"
    local rc=$?
    local secs
    secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
    if ((rc == 0)); then
        SUMMARY+=("$(printf 'PASS  %7ss  %s' "$secs" "$name")")
    else
        SUMMARY+=("$(printf 'FAIL  %7ss  %s (exit %d)' "$secs" "$name" "$rc")")
        FAILED=1
    fi
    return $rc
}

skip_stage() {
    SUMMARY+=("$(printf 'SKIP  %7s   %s (%s)' "-" "$1" "$2")")
    FAILED=1
}

print_summary() {
    local passed=0 failed=0 line
    printf '\n==> Summary\n'
    for line in "${SUMMARY[@]}"; do
        printf '  %s\n' "$line"
        case $line in
            PASS*) passed=$((passed + 1)) ;;
            *) failed=$((failed + 1)) ;;
        esac
    done
    printf 'stages: %d passed, %d failed\n' "$passed" "$failed"
}

as_root() {
    if ((EUID == 0)); then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo -n "$@"
    else
        echo "need root to run: $* (no sudo found)" >&2
        return 1
    fi
}

installed() {
    dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed'
}

install_apt_packages() {
    if ! command -v dpkg >/dev/null; then
        echo "not a Debian system: install the equivalents of ${APT_PACKAGES[*]} by hand" >&2
        return 0
    fi
    local missing=() pkg
    for pkg in "$@"; do
        installed "$pkg" || missing+=("$pkg")
    done
    if ((${#missing[@]} == 0)); then
        echo "Debian packages present: $*"
        return 0
    fi
    echo "installing missing Debian packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# Sets PYTHON to an interpreter that has pytest: python3 as found, with pytest from pip if it lacks it,
# else Debian's python3-pytest (Debian's own python3 refuses pip installs, PEP 668).
setup_pytest() {
    PYTHON=python3
    if python3 -c 'import pytest' 2>/dev/null; then
        echo "pytest present for $(command -v python3)"
        return 0
    fi
    if python3 -m pip --version >/dev/null 2>&1; then
        echo "pytest missing for $(command -v python3): pip install"
        if python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore pytest && python3 -c 'import pytest'; then
            return 0
        fi
    fi
    echo "pytest missing and not installable with pip: using Debian's python3-pytest"
    PYTHON=/usr/bin/python3
    install_apt_packages python3-pytest && "$PYTHON" -c 'import pytest'
}

check_toolchain() {
    local missing=0 tool
    # A fresh login after a rustup install may not have ~/.cargo/bin on PATH yet.
    if ! command -v cargo >/dev/null && [[ -x $HOME/.cargo/bin/cargo ]]; then
        export PATH=$HOME/.cargo/bin:$PATH
    fi
    if ! command -v cargo >/dev/null; then
        echo "cargo not found: install Rust with rustup, then rerun" >&2
        return 1
    fi
    for tool in fmt clippy; do
        if ! cargo "$tool" --version >/dev/null 2>&1; then
            echo "cargo $tool missing: adding it with rustup"
            rustup component add "$([[ $tool == fmt ]] && echo rustfmt || echo clippy)" || missing=1
        fi
    done
    cargo --version
    return $missing
}

# tauri-driver, the WebDriver front of the manager's e2e tests: installed once with cargo.
install_tauri_driver() {
    if command -v tauri-driver >/dev/null || [[ -x $HOME/.cargo/bin/tauri-driver ]]; then
        echo "tauri-driver present"
        return 0
    fi
    echo "tauri-driver missing: cargo install tauri-driver --locked"
    cargo install tauri-driver --locked
}

install_deps() {
    install_apt_packages "${APT_PACKAGES[@]}" && setup_pytest && check_toolchain && install_tauri_driver
}

if ! run_stage deps install_deps; then
    print_summary
    exit 1
fi

# Where cargo puts binaries: CARGO_TARGET_DIR (relative to here) if set, else the workspace's target dir.
if [[ -n ${CARGO_TARGET_DIR:-} ]]; then
    [[ $CARGO_TARGET_DIR == /* ]] || CARGO_TARGET_DIR=$ROOT/$CARGO_TARGET_DIR
    export CARGO_TARGET_DIR
    TARGET_DIR=$CARGO_TARGET_DIR
else
    TARGET_DIR=$(cargo metadata --format-version 1 --no-deps |
        "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])') || TARGET_DIR=$ROOT/target
fi
echo "target dir: $TARGET_DIR"

run_stage fmt cargo fmt --all -- --check
run_stage clippy cargo clippy --workspace --all-targets -- -D warnings
if run_stage build cargo build -p gatehouse-server --bins -p gatehouse-manager; then
    BUILT=1
else
    BUILT=0
fi
run_stage test cargo test --workspace
if ((BUILT)); then
    run_stage e2e env GATEHOUSED="$TARGET_DIR/debug/gatehoused" GATEHOUSE="$TARGET_DIR/debug/gatehouse" \
        GATEHOUSE_MANAGER="$TARGET_DIR/debug/gatehouse-manager" PATH="$PATH:$HOME/.cargo/bin" \
        "$PYTHON" -m pytest -q -p no:cacheprovider tests/e2e
else
    skip_stage e2e "build failed"
fi

print_summary
exit $FAILED
