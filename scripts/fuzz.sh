#!/usr/bin/env bash
# Runs every cargo-fuzz target for <seconds> each (default 600), two at a time (one per core).
#
#   scripts/fuzz.sh [seconds] [target...]
#
# Needs `cargo install cargo-fuzz`. The toolchain is stable, so the nightly-only flags
# libFuzzer needs are unlocked with RUSTC_BOOTSTRAP=1. Corpora grow under fuzz/corpus/<target>
# (gitignored but for the seed-* files); a crash lands in fuzz/artifacts/<target>/ and fails
# the script. Turn each crash into a test in collector/tests/it/fuzz_regressions.rs.
set -euo pipefail

seconds=${1:-600}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(envelope schedule ping_path config)
fi
jobs=${FUZZ_JOBS:-2}

cd "$(dirname "$0")/../fuzz"
export RUSTC_BOOTSTRAP=1
mkdir -p logs
# One build for all targets, so parallel runs do not fight over the target dir. Debug
# assertions on: an overflow in schedule math is a finding, not a silent wrap.
flags=(--release --debug-assertions)
cargo fuzz build "${flags[@]}"

run() {
    local target=$1
    mkdir -p "corpus/$target" "artifacts/$target"
    local log="logs/$target.log"
    local start=$SECONDS
    # The seeds and the grown corpus are the input; new inputs are written to the first dir.
    if cargo fuzz run "${flags[@]}" "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=10 -print_final_stats=1 \
        >"$log" 2>&1; then
        local execs
        execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
        echo "$target: ok, $((SECONDS - start)) s, $execs execs, corpus $(find "corpus/$target" -type f | wc -l) inputs"
    else
        echo "$target: FAILED after $((SECONDS - start)) s; see fuzz/$log and fuzz/artifacts/$target/"
        return 1
    fi
}

# $jobs targets at a time; each batch is waited for by pid so every failure counts.
status=0
for ((i = 0; i < ${#targets[@]}; i += jobs)); do
    pids=()
    for target in "${targets[@]:i:jobs}"; do
        run "$target" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do
        wait "$pid" || status=1
    done
done
exit $status
