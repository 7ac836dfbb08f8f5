#!/usr/bin/env bash
# Throughput of the metering and gating hot paths, each against its
# physical limit, measured by pgbench in one run on one server:
#   record_usage          vs  a plain INSERT into a table indexed like usage.events
#   check_feature_access  vs  a primary-key lookup of the same plan_features row
# Both sides run as the same signed-in member (role authenticated with the
# request.jwt.claims PostgREST sets), 4 clients, 2 threads.
#
#   bench/usage_and_features.sh [SECONDS]
#
# Server: $BENCH_DSN (a superuser DSN of a database to create tables in),
# else the embedded server of `tenantdb up --data-dir bench/.pg`.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-15}"
py="${PYTHON:-python3}"
pgbench="${PGBENCH:-$(ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | sort -V | tail -n 1)}"
[ -x "$pgbench" ] || { echo "pgbench not found (Debian: postgresql-15); set PGBENCH" >&2; exit 1; }
if [ -z "${BENCH_DSN:-}" ]; then
  BENCH_DSN=$("$py" cli.py up --data-dir bench/.pg | tail -n 1)
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

uid=$(psql -X -q -At -d "$BENCH_DSN" -c "insert into auth.users (email) values ('bench-' || gen_random_uuid() || '@bench.test') returning id" | head -n 1)
org=$(psql -X -q -At -d "$BENCH_DSN" -c "select id from tenancy.organizations where personal_owner_id = '$uid'")
psql -X -q -d "$BENCH_DSN" <<SQL
drop table if exists public.bench_plain_events;
create table public.bench_plain_events (like usage.events including defaults);
alter table public.bench_plain_events add primary key (organization_id, occurred_at, id);
create index on public.bench_plain_events (organization_id, meter_key, occurred_at);
create index on public.bench_plain_events (meter_key);
grant insert on public.bench_plain_events to authenticated;
SQL

cat > "$dir/record_usage.sql" <<SQL
select * from public.record_usage('$org', 'api_call', 1, gen_random_uuid()::text);
SQL
cat > "$dir/plain_insert.sql" <<SQL
insert into public.bench_plain_events (organization_id, meter_key, quantity, idempotency_key, occurred_at)
values ('$org', 'api_call', 1, gen_random_uuid()::text, now());
SQL
cat > "$dir/check_feature_access.sql" <<SQL
select public.check_feature_access('$uid', 'max_api_calls_per_month', '$org');
SQL
cat > "$dir/pk_lookup.sql" <<SQL
select * from catalog.plan_features where plan_key = 'free' and feature_key = 'max_api_calls_per_month';
SQL

export PGOPTIONS="-c role=authenticated -c request.jwt.claims={\"sub\":\"$uid\",\"role\":\"authenticated\"}"
tps() { "$pgbench" -n -c 4 -j 2 -T "$seconds" -f "$dir/$1.sql" "$BENCH_DSN" 2>&1 | awk '/^tps/ {print int($3); exit}'; }
echo "server: $(psql -X -At -d "$BENCH_DSN" -c 'show server_version'), $seconds s per run, 4 clients"
plain=$(tps plain_insert); usage=$(tps record_usage)
pk=$(tps pk_lookup); gate=$(tps check_feature_access)
"$py" - "$plain" "$usage" "$pk" "$gate" <<'PY'
import sys
plain, usage, pk, gate = map(int, sys.argv[1:])
print(f"plain INSERT           {plain:>8} tps")
print(f"record_usage           {usage:>8} tps   ratio {usage / plain:.2f}  (goal >= 0.5)")
print(f"primary-key lookup     {pk:>8} tps")
print(f"check_feature_access   {gate:>8} tps   ratio {gate / pk:.2f}  (goal >= 0.3)")
PY
unset PGOPTIONS
psql -X -q -d "$BENCH_DSN" -c "drop table public.bench_plain_events"
