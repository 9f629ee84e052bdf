#!/usr/bin/env bash
# Side-by-side ingest comparison of two collector binaries (benches/README.md, "Figures"):
# for each load, runs A then B, each on a fresh data dir, and prints throughput, latency and the
# collector's CPU per acknowledged check-in.
#
#   scripts/bench-ingest-compare.sh OLD_WATCHPOST NEW_WATCHPOST [DURATION]   # default 30s
#
# Build an older binary with e.g. `git worktree add /tmp/old <commit>` and
# `CARGO_TARGET_DIR=/tmp/old/target cargo build --release -p watchpost-collector --bin watchpost`
# in that worktree. Uses target/release/loadgen (built here). Run on an otherwise idle machine.
set -euo pipefail

[[ $# -ge 2 ]] || { sed -n '2,10p' "$0" >&2; exit 2; }
a="$1" b="$2" duration="${3:-30s}"
port="${BENCH_PORT:-18492}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cargo build --release --quiet -p watchpost-benches --bin loadgen

one() { # binary, connections, rate, extra loadgen args...
    local bin="$1" conns="$2" rate="$3"
    shift 3
    local work pid key c0 c1 n
    work="$(mktemp -d "${TMPDIR:-/tmp}/watchpost-compare.XXXXXX")"
    printf '[limits]\ningest_per_second = 1000000\ningest_burst = 1000000\n' >"$work/b.toml"
    "$bin" serve --config "$work/b.toml" --listen "127.0.0.1:$port" --data-dir "$work/data" \
        >"$work/out" 2>"$work/err" &
    pid=$!
    for _ in $(seq 100); do
        grep -q 'admin token' "$work/out" 2>/dev/null && break
        sleep 0.1
    done
    key="$(sed -n 's|^watchpost: DSN http://\([0-9a-f]*\)@.*|\1|p' "$work/out" | head -n1)"
    c0="$(awk '{print $14 + $15}' "/proc/$pid/stat")"
    target/release/loadgen --url "http://127.0.0.1:$port" --dsn-key "$key" --rate "$rate" \
        --connections "$conns" --duration "$duration" --monitors 1000 "$@" |
        grep -E 'acknowledged|latency|behind|rejected|errors'
    c1="$(awk '{print $14 + $15}' "/proc/$pid/stat")"
    n="$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^watchpost_checkins_accepted_total /{print $2}')"
    awk -v c="$((c1 - c0))" -v n="$n" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { printf "collector CPU per check-in: %.0f us (%d accepted)\n", c / hz * 1e6 / n, n }'
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    rm -rf "$work"
}

for load in "max rate, 1 per envelope:128:0" "max rate, 10 per envelope:64:0:--batch 10" \
    "10000/s, 10 per envelope:64:10000:--batch 10"; do
    IFS=: read -r name conns rate extra <<<"$load"
    for bin in "$a" "$b"; do
        echo "== $name: $bin"
        # shellcheck disable=SC2086 # $extra is a list of arguments
        one "$bin" "$conns" "$rate" $extra
    done
done
