#!/usr/bin/env bash
# A throwaway PostgreSQL server for the storage tests: a fresh cluster in a temporary directory,
# listening on 127.0.0.1 only (a free port, trust authentication), with one database.
#
#   eval "$(bash .ci/postgres.sh start)"   # prints `export HOTPAPERS_TEST_POSTGRES_URL=…` (and
#                                          # HOTPAPERS_TEST_POSTGRES_DIR, which stop reads)
#   bash .ci/postgres.sh stop [DIR]        # stops that server and deletes its directory
#
# start installs PostgreSQL first (apt-get) when no initdb is found. Only the exports go to
# stdout; progress and errors go to stderr, and a failed start prints `false`, so that
# `eval "$(… start)"` fails under `set -e` instead of carrying on without a database.
# The cluster trades durability for speed (fsync off): it exists for one test run.
set -euo pipefail

DB_NAME="${HOTPAPERS_TEST_POSTGRES_DB:-hotpapers_test}"
MARKER="hotpapers-test-postgres"  # stop deletes only directories that start created

say() { echo "postgres.sh: $*" >&2; }

# shellcheck source=.ci/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

# PostgreSQL's server tools refuse to run as root: run them as the postgres user then.
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

find_bindir() {
    if [[ -n "${PG_BIN:-}" ]]; then
        echo "$PG_BIN"
        return
    fi
    local dir
    # Debian keeps the server tools out of PATH, one directory per major version: the newest.
    dir="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null \
        | sort -V | tail -n 1)"
    if [[ -n "$dir" && -x "$dir/initdb" ]]; then
        echo "$dir"
    elif command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        dirname "$(command -v initdb)"
    fi
}

free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

start() {
    local bindir dir port attempt
    bindir="$(find_bindir)"
    if [[ -z "$bindir" ]]; then
        say "initdb not found: installing PostgreSQL"
        apt_install postgresql
        bindir="$(find_bindir)"
        [[ -n "$bindir" ]] || { say "PostgreSQL installed, but initdb is still missing"; return 1; }
    fi

    dir="$(mktemp -d "${TMPDIR:-/tmp}/hotpapers-postgres.XXXXXX")"
    STARTING_DIR="$dir"  # from here on a failure removes the half-made cluster (on_exit)
    touch "$dir/$MARKER"
    if [[ $(id -u) -eq 0 ]]; then
        chown -R postgres:postgres "$dir"
    fi

    # UTF-8 with a Unicode-aware ctype: full-text search lower-cases and splits non-ASCII words.
    as_owner "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 \
        --locale="${HOTPAPERS_TEST_POSTGRES_LOCALE:-C.UTF-8}" >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; false; }

    for attempt in 1 2 3 4 5; do
        port="$(free_port)"
        if as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o "\
            -c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir \
            -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
            -c max_connections=200" start >&2; then
            break
        fi
        say "could not start on port $port (attempt $attempt)"
        cat "$dir/server.log" >&2 || true
        [[ $attempt -lt 5 ]] || false
    done

    as_owner "$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -X -q \
        -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$DB_NAME\"" >&2
    STARTING_DIR=""

    say "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port ($dir)"
    printf "export HOTPAPERS_TEST_POSTGRES_URL='postgresql+asyncpg://postgres@127.0.0.1:%s/%s'\n" \
        "$port" "$DB_NAME"
    printf "export HOTPAPERS_TEST_POSTGRES_DIR='%s'\n" "$dir"
}

stop() {
    local dir="${1:-${HOTPAPERS_TEST_POSTGRES_DIR:-}}" bindir
    if [[ -z "$dir" ]]; then
        say "nothing to stop (HOTPAPERS_TEST_POSTGRES_DIR is not set)"
        return 0
    fi
    if [[ ! -e "$dir/$MARKER" ]]; then
        say "$dir was not made by postgres.sh start; leaving it alone"
        return 0
    fi
    bindir="$(find_bindir)"
    if [[ -n "$bindir" && -f "$dir/data/postmaster.pid" ]]; then
        as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 \
            || say "pg_ctl stop failed; removing $dir anyway"
    fi
    rm -rf "$dir"
    say "stopped and removed $dir"
}

STARTING_DIR=""

# Not `start || …`: bash ignores `set -e` inside a function called from a || list.
on_exit() {
    local status=$?
    if [[ $status -ne 0 ]]; then
        if [[ -n "$STARTING_DIR" ]]; then
            stop "$STARTING_DIR" 2>/dev/null || true
        fi
        say "start failed"
        echo false
    fi
}

case "${1:-}" in
    start)
        trap on_exit EXIT
        start
        ;;
    stop)
        stop "${2:-}"
        ;;
    *)
        echo "usage: $0 start | stop [DIR]" >&2
        exit 2
        ;;
esac
