#!/bin/sh
# Copies the committed mkcp-proto (git HEAD) and this fuzz directory to DEST (default
# /work/fuzz-snap), so fuzzing runs against a fixed tree while the working tree changes.
# Then: cd DEST/fuzz && ./run_all.sh 150
set -eu
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="${1:-/work/fuzz-snap}"
rm -rf "$dest/crates"
mkdir -p "$dest"
git -C "$root" archive HEAD crates/mkcp-proto | tar -x -C "$dest"
# A root manifest with only mkcp-proto as member (it inherits workspace keys).
sed 's#^members = \[#members = ["crates/mkcp-proto"]\nold_members = [#' "$root/Cargo.toml" \
    | awk '/^old_members = \[/{skip=1} skip&&/^\]/{skip=0; next} !skip' > "$dest/Cargo.toml"
mkdir -p "$dest/fuzz"
cp -r "$root/fuzz/Cargo.toml" "$root/fuzz/fuzz_targets" "$root/fuzz/seeds" "$root/fuzz/dicts" \
    "$root/fuzz/run_all.sh" "$dest/fuzz/"
[ -f "$root/fuzz/Cargo.lock" ] && cp "$root/fuzz/Cargo.lock" "$dest/fuzz/"
echo "snapshot of $(git -C "$root" rev-parse --short HEAD) in $dest"
