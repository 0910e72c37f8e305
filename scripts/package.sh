#!/usr/bin/env bash
# Packages every crate of the workspace as crates.io would receive it (CONTRIBUTING.md,
# "Publishing").
#
#   scripts/package.sh            cargo package --workspace: each .crate is built from its
#                                 own sources, internal dependencies resolved against the
#                                 packages of this run (minutes)
#   scripts/package.sh --quick    manifests and file lists only (no build, about a second;
#                                 uncommitted changes allowed; what scripts/test.sh runs)
#   scripts/package.sh --dry-run  cargo publish --workspace --dry-run (needs the network)
#
# A single `cargo package -p mkcp` (or mkcp-netem, mkcp-v2ray, mkcp-bench, mkcp-cli) fails
# until its internal dependencies are on crates.io, even with --no-verify: cargo resolves
# the packaged manifest against the registry. Package it together with them instead, e.g.
# `cargo package -p mkcp-proto -p mkcp`, or the whole workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
    "")
        cargo package --workspace
        ;;
    --quick)
        # Offline first (the local index cache is enough once the workspace has built);
        # the registry only if that cache lacks something.
        cargo package --workspace --no-verify --allow-dirty --offline --quiet \
            || cargo package --workspace --no-verify --allow-dirty --quiet
        ;;
    --dry-run)
        cargo publish --workspace --dry-run
        ;;
    *)
        echo "usage: $0 [--quick | --dry-run]" >&2
        exit 2
        ;;
esac
