#!/usr/bin/env bash
# Creates the Python virtualenv the interop tests drive real Sentry clients from:
# `target/venv` with the sentry-sdk and sentry-cli versions our fixtures were captured from,
# Relay's normalizer (sentry-relay) the payload tests check our events against, and cronsim, the crontab evaluator Sentry computes schedules with (the version Sentry pins),
# as the reference the schedule tests compare against.
#
# Idempotent and safe to run from many processes at once (test binaries run in parallel): the
# work happens under an exclusive flock, and a stamp file naming the pinned versions makes a
# repeated run a quick no-op. Prints the venv path on stdout; progress goes to stderr.
#
# Environment: WATCHPOST_VENV overrides the venv location; PYTHON the interpreter (python3).
set -euo pipefail

readonly SENTRY_SDK_VERSION=2.75.0
readonly SENTRY_CLI_VERSION=3.8.2
readonly AIOSMTPD_VERSION=1.4.6 # the SMTP server the email alert tests deliver to
# Relay's own event normalizer (`sentry_relay.processing.StoreNormalizer`), which the SDK's
# payload tests run our events through to show Sentry keeps them unchanged.
readonly SENTRY_RELAY_VERSION=0.10.1
readonly CRONSIM_VERSION=2.6    # collector/tests/it/crontab_reference.rs
readonly TZDATA_VERSION=2026.6  # the zone data that test gives cronsim, not the system's

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${WATCHPOST_VENV:-$root/target/venv}"
python="${PYTHON:-python3}"
stamp="$venv/.watchpost-test-env"
want="sentry-sdk==$SENTRY_SDK_VERSION sentry-cli==$SENTRY_CLI_VERSION aiosmtpd==$AIOSMTPD_VERSION cronsim==$CRONSIM_VERSION tzdata==$TZDATA_VERSION"
want="$want sentry-relay==$SENTRY_RELAY_VERSION"

up_to_date() {
    [[ -x "$venv/bin/python" && -x "$venv/bin/sentry-cli" && -f "$stamp" ]] &&
        [[ "$(cat "$stamp")" == "$want" ]]
}

# Fast path, without the lock: the stamp is written last and atomically.
if up_to_date; then
    echo "$venv"
    exit 0
fi

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9

# Another process may have finished the work while this one waited for the lock.
if up_to_date; then
    echo "$venv"
    exit 0
fi

if ! command -v "$python" >/dev/null 2>&1; then
    echo "setup-test-env: '$python' not found; install Python 3 (with the venv module) or set PYTHON" >&2
    exit 1
fi

echo "setup-test-env: creating $venv with $want" >&2
# A half-made venv (interrupted run, other Python version) is rebuilt from scratch.
if [[ -e "$venv" && ! -x "$venv/bin/python" ]]; then
    rm -rf "$venv"
fi
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "sentry-sdk==$SENTRY_SDK_VERSION" "sentry-cli==$SENTRY_CLI_VERSION" "aiosmtpd==$AIOSMTPD_VERSION" \
    "cronsim==$CRONSIM_VERSION" "tzdata==$TZDATA_VERSION" >&2

"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "sentry-relay==$SENTRY_RELAY_VERSION" >&2

# Check what was installed rather than trusting pip's exit code alone.
got_sdk="$("$venv/bin/python" -c 'import sentry_sdk; print(sentry_sdk.VERSION)')"
got_cli="$("$venv/bin/sentry-cli" --version)"
got_cronsim="$("$venv/bin/python" -c 'from importlib.metadata import version; print(version("cronsim"), version("tzdata"))')"
if [[ "$got_sdk" != "$SENTRY_SDK_VERSION" || "$got_cli" != *"$SENTRY_CLI_VERSION"* ||
    "$got_cronsim" != "$CRONSIM_VERSION $TZDATA_VERSION" ]]; then
    echo "setup-test-env: expected sentry-sdk $SENTRY_SDK_VERSION, sentry-cli $SENTRY_CLI_VERSION, cronsim and tzdata $CRONSIM_VERSION $TZDATA_VERSION, got '$got_sdk', '$got_cli' and '$got_cronsim'" >&2
    exit 1
fi

got_relay="$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("sentry-relay"))')"
if [[ "$got_relay" != "$SENTRY_RELAY_VERSION" ]]; then
    echo "setup-test-env: expected sentry-relay $SENTRY_RELAY_VERSION, got '$got_relay'" >&2
    exit 1
fi

printf '%s' "$want" >"$stamp.tmp"
mv "$stamp.tmp" "$stamp"
echo "setup-test-env: ready ($got_cli, sentry-sdk $got_sdk, cronsim and tzdata $got_cronsim)" >&2
echo "$venv"
