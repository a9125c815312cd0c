#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests (kiln-store's PostgreSQL study storage tests; the end-to-end suite can use
# it too). Debian's postgresql package puts the server in /usr/lib/postgresql/<version>/bin (the newest is used; PG_BIN
# overrides). PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user.
#
#   scripts/pg_server.sh start DIR [PID]   initdb in DIR/data, start on a free 127.0.0.1 port (socket in DIR), print
#                                          the URL: postgresql://kiln:kiln-secret@127.0.0.1:<port>/kiln
#                                          (user kiln, a superuser with a password, checked over TCP; database kiln).
#                                          With PID: a watchdog stops the server and removes DIR once PID is gone,
#                                          so a killed test leaves no server behind. As root, DIR's parents must
#                                          be open to the postgres user (/tmp/something is).
#   scripts/pg_server.sh stop DIR          stop the server of DIR (DIR itself is left)
#   scripts/pg_server.sh bin               print the folder of the server's binaries (pg_dump, psql, ...)
set -euo pipefail

PASSWORD=kiln-secret

usage() {
  echo "usage: $0 start DIR [PID] | stop DIR | bin" >&2
  exit 2
}

pg_bin() {
  if [ -n "${PG_BIN:-}" ]; then
    echo "$PG_BIN"
    return
  fi
  local newest
  newest=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$newest" ] && command -v initdb >/dev/null; then
    newest=$(dirname "$(command -v initdb)")
  fi
  if [ -z "$newest" ]; then
    echo "$0: no PostgreSQL server (no /usr/lib/postgresql/*/bin, no initdb on PATH): run \`make sysdeps\`" >&2
    exit 1
  fi
  echo "$newest"
}

# runs a server binary as the postgres user when we are root, else as ourselves
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

start() {
  local dir=$1 watch=${2:-} bin port url
  bin=$(pg_bin)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ "$(id -u)" = 0 ]; then
    chown postgres: "$dir"
    runuser -u postgres -- test -w "$dir" || {
      echo "$0: $dir is out of the postgres user's reach (a parent folder is private): pick a folder under /tmp" >&2
      exit 1
    }
  fi
  printf '%s\n' "$PASSWORD" > "$dir/pwfile"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir/pwfile"
  as_pg "$bin/initdb" -D "$dir/data" -U kiln --pwfile="$dir/pwfile" --auth-local=trust --auth-host=scram-sha-256 \
    -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
  rm -f "$dir/pwfile"
  # a free port: PostgreSQL cannot bind port 0, so try random ones until the server starts on one
  for _ in 1 2 3 4 5 6 7 8; do
    port=$((20000 + RANDOM % 40000))
    if as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 start -o \
      "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c fsync=off \
       -c synchronous_commit=off -c full_page_writes=off" >/dev/null 2>&1; then
      break
    fi
    port=
  done
  if [ -z "$port" ]; then
    echo "$0: the server did not start; its log:" >&2
    cat "$dir/server.log" >&2
    exit 1
  fi
  as_pg "$bin/createdb" -h "$dir" -p "$port" -U kiln kiln
  echo "$port" > "$dir/port"
  if [ -n "$watch" ]; then
    # detached from our stdout, so a caller reading the URL is not kept waiting
    setsid bash -c '
      while kill -0 "$1" 2>/dev/null && [ -f "$2/data/postmaster.pid" ]; do sleep 1; done
      "$3" stop "$2" >/dev/null 2>&1 || true
      rm -rf "$2"' watchdog "$watch" "$dir" "$(cd "$(dirname "$0")" && pwd)/$(basename "$0")" \
      </dev/null >/dev/null 2>&1 &
  fi
  url="postgresql://kiln:$PASSWORD@127.0.0.1:$port/kiln"
  echo "$url"
}

stop() {
  local dir=$1 bin
  bin=$(pg_bin)
  [ -f "$dir/data/postmaster.pid" ] || return 0
  as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
}

case "${1:-}" in
  start) [ $# -ge 2 ] || usage; start "$2" "${3:-}" ;;
  stop) [ $# -eq 2 ] || usage; stop "$2" ;;
  bin) pg_bin ;;
  *) usage ;;
esac
