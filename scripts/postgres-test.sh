#!/usr/bin/env bash
# Starts the PostgreSQL server the PostgreSQL store's tests run against, and prints its URL.
#
# A throwaway cluster of our own under `target/postgres` (data, socket, log), listening on a
# loopback port only, with trust authentication for the one local user: nothing is installed
# into or read from a system cluster, and `cargo clean` removes it. When the server binaries
# are missing, Debian's `postgresql` package is installed (as root, with apt-get) first.
#
# Idempotent and safe to run from many test processes at once: the work happens under an
# exclusive flock, and a running server answering on the port is reused. Prints
# `postgres://watchpost@127.0.0.1:PORT/postgres` on stdout; progress goes to stderr.
#
# `scripts/postgres-test.sh --stop` stops it (`.ci/run` does, at its end); otherwise it keeps
# running between test runs, so the next run starts at once.
#
# Environment: WATCHPOST_PG_DIR overrides the cluster directory; WATCHPOST_PG_PORT the port
# (default 54329). PostgreSQL refuses to run as root, so as root the cluster belongs to the
# `postgres` system user the Debian package creates.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${WATCHPOST_PG_DIR:-$root/target/postgres}"
port="${WATCHPOST_PG_PORT:-54329}"
url="postgres://watchpost@127.0.0.1:$port/postgres"

log() { printf 'postgres-test: %s\n' "$*" >&2; }

bin_dir() {
    local initdb
    initdb="$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)"
    [[ -n "$initdb" ]] && dirname "$initdb"
}

# Runs a server program as the cluster's owner.
as_owner() {
    if [[ "$(id -u)" == 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

answering() {
    "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U watchpost -d postgres
}

mkdir -p "$dir"
exec 9>"$dir.lock"
flock 9

if [[ "${1:-}" == "--stop" ]]; then
    bin="$(bin_dir || true)"
    if [[ -n "$bin" && -f "$dir/data/postmaster.pid" ]]; then
        as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2 9>&- || true
    fi
    exit 0
fi

bin="$(bin_dir || true)"
if [[ -z "$bin" ]]; then
    if [[ "$(id -u)" != 0 ]]; then
        log "PostgreSQL is not installed and this is not root: install Debian's postgresql package"
        exit 1
    fi
    log "installing Debian's postgresql package"
    DEBIAN_FRONTEND=noninteractive apt-get update >&2
    # The package's own cluster is not started: the tests run their own.
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql >&2
    bin="$(bin_dir)"
fi

if answering; then
    echo "$url"
    exit 0
fi

data="$dir/data"
if [[ ! -f "$data/PG_VERSION" ]]; then
    log "creating a cluster in $data"
    rm -rf "$data"
    mkdir -p "$data" "$dir/run"
    [[ "$(id -u)" == 0 ]] && chown -R postgres: "$dir"
    as_owner "$bin/initdb" -D "$data" -U watchpost --auth=trust --encoding=UTF8 \
        --locale=C.UTF-8 >&2
fi
[[ "$(id -u)" == 0 ]] && chown -R postgres: "$dir"
# Loopback only; small, since every test database is small; fsync stays on (the store's
# durability claims are tested against it); up to 200 connections for parallel tests.
# The server must not inherit the lock (fd 9) or our stdout: it outlives this script, and
# would hold the next caller's flock, or a `$(...)` around this script, forever.
as_owner "$bin/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 start -o \
    "-c listen_addresses=127.0.0.1 -p $port -k $dir/run -c max_connections=200 -c shared_buffers=64MB" \
    </dev/null >&2 9>&- ||
    { log "the server did not start; its log:"; tail -n 30 "$dir/server.log" >&2; exit 1; }
answering || { log "the server started but does not answer on 127.0.0.1:$port"; exit 1; }
log "PostgreSQL answering at $url"
echo "$url"
