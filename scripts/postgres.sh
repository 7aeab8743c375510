#!/usr/bin/env bash
# A throwaway PostgreSQL server for the test suite, on 127.0.0.1 only.
#   scripts/postgres.sh start   -> prints the SQLAlchemy URL on its last line
#   scripts/postgres.sh stop
# Installs Debian's postgresql when no server binaries are found (needs root). PostgreSQL refuses to run
# as root, so as root the server runs as the 'postgres' user; its data lives outside the clone, which
# may sit in a directory that user cannot enter.
set -euo pipefail

PORT="${SHAREHUB_TEST_PG_PORT:-25432}"
BASE="${SHAREHUB_TEST_PG_DIR:-/tmp/sharehub-test-pg-$PORT}"
DATA="$BASE/data"
DB=sharehub_test

find_bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

BIN=$(find_bindir || true)
if [ -z "$BIN" ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "postgres: installing Debian's postgresql…" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
    BIN=$(find_bindir)
  else
    echo "postgres: no PostgreSQL server found; install Debian's 'postgresql' package" >&2
    exit 1
  fi
fi

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-}" in
  start)
    mkdir -p "$BASE"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$BASE"
    chmod 700 "$BASE"
    if [ ! -f "$DATA/PG_VERSION" ]; then
      as_owner "$BIN/initdb" -D "$DATA" -U sharehub --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$BASE/initdb.log" 2>&1 \
        || { cat "$BASE/initdb.log" >&2; exit 1; }
    fi
    if ! as_owner "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
      # The suite's server trades durability for speed; a bench that measures commits asks for a
      # durable one (SHAREHUB_PG_DURABLE=1), as production runs.
      durability="-c fsync=off -c full_page_writes=off"
      [ "${SHAREHUB_PG_DURABLE:-}" = 1 ] && durability=""
      as_owner "$BIN/pg_ctl" -D "$DATA" -l "$BASE/server.log" -w -t 60 \
        -o "-p $PORT -h 127.0.0.1 -k $BASE $durability" start >&2 \
        || { tail -20 "$BASE/server.log" >&2; exit 1; }
    fi
    as_owner "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U sharehub -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname='$DB'" | grep -q 1 \
      || as_owner "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U sharehub "$DB"
    echo "postgresql+psycopg://sharehub@127.0.0.1:$PORT/$DB"
    ;;
  stop)
    if [ -f "$DATA/PG_VERSION" ]; then
      as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null 2>&1 || true
    fi
    ;;
  *)
    echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
