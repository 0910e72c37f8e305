#!/bin/sh
# Runs every fuzz target for SECONDS (default 150) seconds, one after the other, with the
# committed seeds. Usage: fuzz/run_all.sh [SECONDS]   (needs a nightly toolchain + cargo-fuzz)
set -eu
cd "$(dirname "$0")"
secs="${1:-150}"
for t in datagram_legacy datagram_aes_gcm datagram_raw config_json endpoint; do
    mkdir -p "corpus/$t"
    dict=""
    [ -f "dicts/$t.dict" ] && dict="-dict=dicts/$t.dict"
    cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -max_len=2100 $dict
done
