#!/usr/bin/env bash
# The one test command (README "Run all tests"; CI's .ci/run calls exactly this).
# On a fresh Debian machine with the Rust toolchain it installs what the tests need
# (the v2ray package for interop tests), then runs formatting, lint and all tests.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${MKCP_SKIP_INTEROP:-0}" != "1" ] && ! command -v v2ray >/dev/null 2>&1; then
    echo "== installing the v2ray package (interop peer) =="
    if [ "$(id -u)" = "0" ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq v2ray
fi

# `systemd-analyze verify` checks the units in deploy/ (crates/mkcp-cli/tests/deploy.rs).
if [ "${MKCP_SKIP_SYSTEMD:-0}" != "1" ] && ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "== installing the systemd package (systemd-analyze) =="
    if [ "$(id -u)" = "0" ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends systemd
fi

echo "== cargo fmt --check =="
cargo fmt --all -- --check
# --all-features: `mkcp bench` (mkcp-cli's `bench` feature, off for installs) is linted
# and tested too.
echo "== cargo clippy =="
cargo clippy --workspace --all-targets --all-features -- -D warnings
echo "== cargo test =="
cargo test --workspace --all-features
# The crates as crates.io would receive them (manifests and file lists; about a second).
echo "== cargo package (manifests) =="
bash scripts/package.sh --quick
