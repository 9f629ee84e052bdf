#!/usr/bin/env bash
# Measures the collector's envelope ingest: idle RSS, throughput at max rate, latency at a fixed
# rate, each with one check-in per envelope (Sentry SDKs) and with ten (the watchpost SDK batches). The figures in benches/README.md ("Collector ingest") come from this script.
#
#   scripts/bench-ingest.sh [DURATION] [RATE]      # defaults: 30s and 10000/s
#
# Builds release binaries, starts `watchpost serve` on a loopback port with a fresh data dir
# under a temporary directory, drives it with benches' `loadgen`, and stops it. Run it on an
# otherwise idle machine: the collector and the load generator share its cores.
set -euo pipefail

duration="${1:-30s}"
rate="${2:-10000}"
port="${BENCH_PORT:-18490}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# BENCH_NO_BUILD=1 measures the binaries already in target/release.
if [[ -z "${BENCH_NO_BUILD:-}" ]]; then
    cargo build --release --quiet -p watchpost-collector -p watchpost-benches --bin watchpost --bin loadgen
fi
work="$(mktemp -d "${TMPDIR:-/tmp}/watchpost-bench.XXXXXX")"
# Copies, so a concurrent build cannot swap the binaries mid-run.
cp target/release/watchpost target/release/loadgen "$work/"

# The per-key and per-monitor ingest rate limits (1 000/s, 120/min by default) would measure
# themselves, not the collector.
cat >"$work/watchpost.toml" <<'TOML'
[limits]
ingest_per_second = 1000000
ingest_burst = 1000000
monitor_checkins_per_minute = 1000000
TOML
"$work/watchpost" serve --config "$work/watchpost.toml" --listen "127.0.0.1:$port" \
    --data-dir "$work/data" >"$work/out" 2>"$work/err" &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do
    grep -q '^watchpost: admin token' "$work/out" 2>/dev/null && break
    sleep 0.1
done
key="$(sed -n 's|^watchpost: DSN http://\([0-9a-f]*\)@.*|\1|p' "$work/out" | head -n1)"
[[ -n "$key" ]] || { echo "the collector did not start:" >&2; cat "$work/err" >&2; exit 1; }

rss() { ps -o rss= -p "$pid" | awk '{printf "%.1f MB", $1 / 1024}'; }
# CPU seconds (user + system) the collector has used so far, and check-ins it has accepted: their
# ratio is the cost of one check-in, which contention on a shared machine does not distort.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$pid/stat"; }
accepted() {
    curl -s "http://127.0.0.1:$port/metrics" | awk '/^watchpost_checkins_accepted_total /{print $2}'
}
cost() {
    local cpu0="$1" n0="$2" cpu1 n1
    cpu1="$(cpu)"
    n1="$(accepted)"
    awk -v c="$cpu1" -v c0="$cpu0" -v n="$n1" -v n0="$n0" 'BEGIN {
        printf "collector CPU: %.1f s for %d check-ins = %.0f us per check-in (%.0f/s per core)\n",
            c - c0, n - n0, (c - c0) * 1e6 / (n - n0), (n - n0) / (c - c0) }'
}
sleep 2
echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -n1), $(nproc) cores"
echo "idle RSS after start: $(rss)"

loadgen() {
    "$work/loadgen" --url "http://127.0.0.1:$port" --dsn-key "$key" --duration "$duration" \
        --monitors 1000 "$@"
}

echo
echo "== max rate: loadgen --rate 0 --connections 128 --duration $duration"
c0="$(cpu)" n0="$(accepted)"
loadgen --rate 0 --connections 128
cost "$c0" "$n0"
echo
echo "== fixed rate: loadgen --rate $rate --connections 64 --duration $duration"
c0="$(cpu)" n0="$(accepted)"
loadgen --rate "$rate" --connections 64
cost "$c0" "$n0"
# The same with 10 check-ins per envelope, as the watchpost SDK's transport batches them.
echo
echo "== max rate, batched: loadgen --rate 0 --connections 64 --batch 10 --duration $duration"
c0="$(cpu)" n0="$(accepted)"
loadgen --rate 0 --connections 64 --batch 10
cost "$c0" "$n0"
echo
echo "== fixed rate, batched: loadgen --rate $rate --connections 64 --batch 10 --duration $duration"
c0="$(cpu)" n0="$(accepted)"
loadgen --rate "$rate" --connections 64 --batch 10
cost "$c0" "$n0"
echo
sleep 5
echo "idle RSS after the runs: $(rss)"
curl -s "http://127.0.0.1:$port/metrics" |
    grep -E '^watchpost_(checkins_accepted_total|store_flushes_total|store_size_bytes) '
