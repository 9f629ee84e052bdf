#!/usr/bin/env bash
# Crash soak (docs/reliability.md, "Crash safety"): builds the release collector, runs it on a
# temp data dir at 127.0.0.1:${SOAK_PORT:-18471}, drives check-ins, pings and error events while
# SIGKILLing and restarting it every 20-40 s, then verifies every acknowledged request.
#
#   scripts/soak.sh [seconds]     # default 600
set -euo pipefail
duration=${1:-600}
cd "$(dirname "$0")/.."
cargo build --release -p watchpost-collector --bin watchpost
exec python3 scripts/soak.py target/release/watchpost "$duration" "${SOAK_PORT:-18471}"
