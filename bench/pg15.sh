#!/usr/bin/env bash
# Start (or reuse) Debian's PostgreSQL 15 — the test harness's server,
# Supabase's major — for the benchmarks, and print a superuser DSN of its
# postgres database. As root, the server runs as the postgres OS user
# (initdb and pg_ctl refuse root), through tests/bin/pg_ctl-as-postgres.
#
#   bench/pg15.sh [start|stop]      data in bench/.pg15, port 5415
set -euo pipefail
cd "$(dirname "$0")/.."
bindir="${TENANTDB_PG_BINDIR:-/usr/lib/postgresql/15/bin}"
[ -x "$bindir/pg_ctl" ] || { echo "PostgreSQL 15 not found in $bindir (Debian: apt-get install postgresql-15)" >&2; exit 1; }
export TENANTDB_PG_BINDIR="$bindir"
pg_ctl="$bindir/pg_ctl"
[ "$(id -u)" -eq 0 ] && pg_ctl="$PWD/tests/bin/pg_ctl-as-postgres"
data="$PWD/bench/.pg15"
sock="$data"
port=5415
if [ "${1:-start}" = "stop" ]; then
  [ -f "$data/postmaster.pid" ] && "$pg_ctl" -D "$data" -m fast -w stop >/dev/null
  exit 0
fi
if [ ! -f "$data/PG_VERSION" ]; then
  "$pg_ctl" initdb -D "$data" -o "-A trust -U postgres --no-sync" >/dev/null
fi
if ! "$pg_ctl" -D "$data" status >/dev/null 2>&1; then
  "$pg_ctl" -D "$data" -l "$data/server.log" -w -o "-p $port -k $sock -c listen_addresses=''" start >/dev/null
fi
echo "host=$sock port=$port user=postgres dbname=postgres"
