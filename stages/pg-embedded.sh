#!/usr/bin/env bash
# pg-embedded.sh: a throwaway local PostgreSQL for tests and local runs.
#
#   pg-embedded.sh start DIR [PORT]   initialise DIR (if needed) and start the server (idempotent)
#   pg-embedded.sh stop DIR           stop the server (fast shutdown); no-op when not running
#   pg-embedded.sh url DIR            print the libpq URI, postgresql:///postgres?host=DIR&port=PORT&user=postgres
#
# The server uses the machine's PostgreSQL binaries (pg_config --bindir, else /usr/lib/postgresql/*/bin), keeps its
# data in DIR/data, listens only on a Unix socket in DIR (listen_addresses=''), and trusts local connections
# (initdb -A trust -U postgres). Run as root, it runs initdb/pg_ctl as the `postgres` OS user and chowns DIR.
# The port (default 54329) is remembered in DIR/port.
set -euo pipefail

usage() {
    echo "usage: $0 start DIR [PORT] | stop DIR | url DIR" >&2
    exit 64
}

find_bindir() {
    local dir
    if command -v pg_config >/dev/null 2>&1; then
        dir=$(pg_config --bindir 2>/dev/null || true)
        if [[ -n "$dir" && -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
            echo "$dir"
            return
        fi
    fi
    # Highest installed major version first.
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n -r); do
        if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
            echo "$dir"
            return
        fi
    done
    echo "pg-embedded: no PostgreSQL server binaries found (initdb, pg_ctl)" >&2
    exit 69
}

# Runs a command as the postgres OS user when we are root (PostgreSQL refuses to run as root).
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        if command -v runuser >/dev/null 2>&1; then
            runuser -u postgres -- "$@"
        else
            su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
        fi
    else
        "$@"
    fi
}

absolute() {
    mkdir -p "$1"
    (cd "$1" && pwd -P)
}

cmd_start() {
    local dir port bindir
    dir=$(absolute "$1")
    port=${2:-}
    if [[ -z "$port" && -f "$dir/port" ]]; then port=$(cat "$dir/port"); fi
    port=${port:-54329}
    # A Unix socket path is limited to 107 bytes: DIR/.s.PGSQL.PORT must fit.
    if (( ${#dir} + 18 > 107 )); then
        echo "pg-embedded: DIR path too long for a Unix socket: $dir" >&2
        exit 64
    fi
    bindir=$(find_bindir)
    if [[ $(id -u) -eq 0 ]]; then
        id postgres >/dev/null 2>&1 || { echo "pg-embedded: running as root needs a 'postgres' OS user" >&2; exit 69; }
        chown postgres "$dir"
        chmod 700 "$dir"
    fi
    if [[ ! -f "$dir/data/PG_VERSION" ]]; then
        as_owner "$bindir/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 || {
            cat "$dir/initdb.log" >&2
            exit 1
        }
    fi
    if as_owner "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        local running_port
        running_port=$(cat "$dir/port" 2>/dev/null || echo "$port")
        if [[ "$running_port" != "$port" ]]; then
            echo "pg-embedded: already running in $dir on port $running_port (asked for $port)" >&2
            exit 1
        fi
        if [[ -S "$dir/.s.PGSQL.$port" ]]; then
            echo "pg-embedded: already running in $dir on port $port" >&2
            return 0
        fi
        # The server runs but its socket file was deleted: nobody can connect to it, so restart it.
        echo "pg-embedded: running in $dir but its socket $dir/.s.PGSQL.$port is gone: restarting it" >&2
        as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    fi
    echo "$port" >"$dir/port"
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
        -o "-k '$dir' -p $port -c listen_addresses='' -c fsync=off -c full_page_writes=off -c synchronous_commit=off" \
        >/dev/null || {
        tail -n 20 "$dir/server.log" >&2 || true
        exit 1
    }
    echo "pg-embedded: started in $dir on port $port" >&2
}

cmd_stop() {
    local dir bindir
    [[ -d "$1" ]] || return 0
    dir=$(cd "$1" && pwd -P)
    [[ -f "$dir/data/PG_VERSION" ]] || return 0
    bindir=$(find_bindir)
    if as_owner "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
        echo "pg-embedded: stopped $dir" >&2
    fi
}

cmd_url() {
    local dir port
    dir=$(cd "$1" && pwd -P)
    port=$(cat "$dir/port" 2>/dev/null || echo 54329)
    echo "postgresql:///postgres?host=$dir&port=$port&user=postgres"
}

[[ $# -ge 2 ]] || usage
case "$1" in
    start) [[ $# -le 3 ]] || usage; cmd_start "$2" "${3:-}" ;;
    stop) [[ $# -eq 2 ]] || usage; cmd_stop "$2" ;;
    url) [[ $# -eq 2 ]] || usage; cmd_url "$2" ;;
    *) usage ;;
esac
