#!/usr/bin/env bash
# The database a benchmark runs in: starts the server if needed, creates
# the database if missing, applies and seeds the current schema, and
# prints its DSN.
#
#   bench/server.sh 15|18 DBNAME [fresh]
#     fresh: drop the database first (a benchmark whose tables grow with
#     every run starts from the same state each time)
#     15: Debian's PostgreSQL 15 (bench/pg15.sh, the test harness's server)
#     18: the embedded server of `tenantdb up --data-dir bench/.pg`
#   BENCH_DSN (a superuser DSN) overrides the server; DBNAME is made there.
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-python3}"
if [ -n "${BENCH_DSN:-}" ]; then
  admin="$BENCH_DSN"
else
  case "${1:?server: 15 or 18}" in
    15) admin=$(bench/pg15.sh) ;;
    18) admin=$("$py" cli.py up --data-dir bench/.pg 2>/dev/null | tail -n 1) ;;
    *) echo "server must be 15 or 18" >&2; exit 2 ;;
  esac
fi
name="${2:?database name}"
dsn=$("$py" -c 'import sys; from psycopg.conninfo import make_conninfo; print(make_conninfo(sys.argv[1], dbname=sys.argv[2]))' "$admin" "$name")
if [ "${3:-}" = fresh ]; then
  psql -X -q -d "$admin" -c "drop database if exists \"$name\" with (force)"
fi
if ! psql -X -q -At -d "$admin" -c "select 1 from pg_database where datname = '$name'" | grep -q 1; then
  psql -X -q -d "$admin" -c "create database \"$name\""
fi
"$py" cli.py --dsn "$dsn" migrate >/dev/null
"$py" cli.py --dsn "$dsn" seed >/dev/null
echo "$dsn"
