#!/usr/bin/env bash
# Fails when watchpost-engine or watchpost-protocol depends on a runtime, an HTTP stack or the
# store (tokio, hyper, reqwest, axum, sled, or a crate of theirs such as hyper-util), directly
# or through another crate. `.ci/run` runs it before the tests.
#
# The engine and the wire format are crates of their own so that their dependencies show they
# do no I/O (ARCHITECTURE.md, "Invariants"); this keeps it that way.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

status=0
for crate in watchpost-engine watchpost-protocol; do
    tree=$(cargo tree -p "$crate" -e normal --prefix none --format '{p}')
    found=$(awk '{ print $1 }' <<<"$tree" | grep -E '^(tokio|hyper|reqwest|axum|sled)(-.*)?$' |
        sort -u | paste -sd ' ' - || true)
    if [ -n "$found" ]; then
        echo "error: $crate must stay free of runtimes, HTTP and the store, but its dependencies" \
            "include: $found" >&2
        echo "  \`cargo tree -p $crate -e normal -i <name>\` shows how; move the code that needs" \
            "it to the collector or the SDK." >&2
        status=1
    else
        echo "$crate: no tokio, hyper, reqwest, axum or sled"
    fi
done
exit "$status"
