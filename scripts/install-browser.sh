#!/usr/bin/env bash
# Installs Debian's Chromium and ChromeDriver for the dashboard's browser tests
# (collector/tests/it/browser.rs), only when they are missing. Needs root (apt-get); CI runs as root.
# The browser tests call this script themselves when chromium is missing and they run as root,
# so `cargo test` works on a fresh machine too.
set -euo pipefail

if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-browser.sh: chromium/chromedriver are missing and this is not root;" >&2
    echo "  run: sudo apt-get update && sudo apt-get install -y chromium chromium-driver" >&2
    exit 1
fi
# One installer at a time: several test binaries may ask at once.
exec 9>"${TMPDIR:-/tmp}/watchpost-install-browser.lock"
flock 9
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends chromium chromium-driver
