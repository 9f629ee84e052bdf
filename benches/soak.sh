#!/usr/bin/env bash
# Soak: how large the store grows over millions of check-ins with retention in force. Not run in
# CI; the figures in benches/README.md ("Store size over a soak") come from this script.
#
#   benches/soak.sh [CHECKINS] [MAX_DURATION_S] [CACHE_SIZE]
#       defaults: 20000000 check-ins, 3600 s at most, the collector's default cache size
#
# Starts the release `watchpost serve` on a loopback port with a fresh data dir, retention 100
# check-ins per monitor environment, and drives it with benches' `loadgen` at full rate over
# 1,000 monitors (each run is an `in_progress` then an `ok`: two accepted check-ins, one
# retained record). Every million accepted check-ins it prints one row: elapsed time, the
# store's size as the collector reports it (`watchpost_store_size_bytes`), the data dir's size
# by `du`, the collector's RSS and the rate since the previous row. It stops at CHECKINS or after
# MAX_DURATION_S, whichever comes first, then prints `watchpost store stats` of the stopped
# collector's data dir (records and live bytes per tree next to the file size).
#
# SOAK_NO_BUILD=1 uses the binaries already in target/release. SOAK_KEEP=DIR keeps the data dir
# there. SOAK_STORE adds lines to the config's `[store]` (compaction settings); the compactions
# the collector ran are listed at the end, from its log. The machine is shared by whatever else runs on it: note the load with the figures.
set -euo pipefail

checkins="${1:-20000000}"
max_seconds="${2:-3600}"
cache="${3:-}"
port="${SOAK_PORT:-18491}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if [[ -z "${SOAK_NO_BUILD:-}" ]]; then
    cargo build --release --quiet -p watchpost-collector -p watchpost-benches --bin watchpost --bin loadgen
fi
work="$(mktemp -d "${TMPDIR:-/tmp}/watchpost-soak.XXXXXX")"
# Copies, so a concurrent build cannot swap the binaries mid-run.
cp target/release/watchpost target/release/loadgen "$work/"

{
    # The ingest rate limits would otherwise measure themselves, not the store.
    printf '[limits]\ningest_per_second = 1000000\ningest_burst = 1000000\n'
    printf 'monitor_checkins_per_minute = 1000000\n'
    printf '[retention]\ncheckins_per_monitor = 100\n'
    printf '[store]\n'
    if [[ -n "$cache" ]]; then
        printf 'cache_size = %s\n' "$cache"
    fi
    # More `[store]` lines, e.g. SOAK_STORE='compact_check = "30s"' or 'compact_above = 0'.
    printf '%b\n' "${SOAK_STORE:-}"
} >"$work/watchpost.toml"

"$work/watchpost" serve --config "$work/watchpost.toml" --listen "127.0.0.1:$port" \
    --data-dir "$work/data" >"$work/out" 2>"$work/err" &
pid=$!
gen=""
cleanup() {
    [[ -n "$gen" ]] && kill "$gen" 2>/dev/null
    kill "$pid" 2>/dev/null
    wait 2>/dev/null
    if [[ -n "${SOAK_KEEP:-}" ]]; then
        rm -rf "$SOAK_KEEP" && mv "$work/data" "$SOAK_KEEP"
    fi
    rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 100); do
    grep -q '^watchpost: admin token' "$work/out" 2>/dev/null && break
    sleep 0.1
done
key="$(sed -n 's|^watchpost: DSN http://\([0-9a-f]*\)@.*|\1|p' "$work/out" | head -n1)"
[[ -n "$key" ]] || { echo "the collector did not start:" >&2; cat "$work/err" >&2; exit 1; }

metric() {
    curl -s "http://127.0.0.1:$port/metrics" | awk -v m="$1" '$1 == m {print $2}'
}
# CPU seconds (user + system) the collector has used: per accepted check-in, a cost that other
# processes on a shared machine distort far less than throughput.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$pid/stat"; }
rss_mb() { ps -o rss= -p "$pid" | awk '{printf "%.0f", $1 / 1024}'; }
du_mb() { du -sm "$work/data" | cut -f1; }

echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -n1), $(nproc) cores;" \
    "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "soak: $checkins check-ins at most, $max_seconds s at most, cache ${cache:-default}"
echo "idle RSS after start: $(rss_mb) MB"
echo
echo "| accepted check-ins | elapsed | store size (MB) | data dir by du (MB) | RSS (MB) | check-ins/s |"
echo "|---|---|---|---|---|---|"

"$work/loadgen" --url "http://127.0.0.1:$port" --dsn-key "$key" --rate 0 --connections 64 \
    --warmup 0s --duration "${max_seconds}s" --monitors 1000 >"$work/loadgen.out" 2>&1 &
gen=$!

start=$SECONDS
next=1000000
last_n=0
last_t=$start
peak_rss=0
while kill -0 "$gen" 2>/dev/null; do
    sleep 1
    n="$(metric watchpost_checkins_accepted_total)"
    n="${n:-0}"
    rss="$(rss_mb)"
    ((rss > peak_rss)) && peak_rss=$rss
    if ((n >= next)); then
        now=$SECONDS
        size="$(metric watchpost_store_size_bytes)"
        rate=$(((n - last_n) / (now - last_t > 0 ? now - last_t : 1)))
        printf '| %d | %d s | %.0f | %s | %s | %d |\n' "$n" $((now - start)) \
            "$(awk -v s="$size" 'BEGIN{print s / 1048576}')" "$(du_mb)" "$rss" "$rate"
        last_n=$n last_t=$now
        while ((next <= n)); do next=$((next + 1000000)); done
    fi
    if ((n >= checkins || SECONDS - start >= max_seconds)); then
        break
    fi
done
kill "$gen" 2>/dev/null || true
wait "$gen" 2>/dev/null || true
gen=""
total="$(metric watchpost_checkins_accepted_total)"
cpu="$(cpu_s)"
echo
echo "accepted: $total check-ins in $((SECONDS - start)) s ($((total / (SECONDS - start > 0 ? SECONDS - start : 1)))/s);" \
    "peak RSS under load: $peak_rss MB;" \
    "collector CPU $cpu s = $(awk -v c="$cpu" -v n="$total" 'BEGIN{printf "%.0f", c * 1e6 / n}') us per check-in"
sleep 3
echo "RSS 3 s after the load: $(rss_mb) MB"
kill "$pid"
wait "$pid" 2>/dev/null || true
echo
echo "watchpost store stats --data-dir (collector stopped):"
"$work/watchpost" store stats --data-dir "$work/data" || true
echo "data dir by du: $(du_mb) MB"
echo
echo "compactions (the collector's log; seconds and bytes):"
grep 'store compacted' "$work/err" | sed 's/\x1b\[[0-9;]*m//g; s/^.*store compacted *//' || echo "none"
