#!/usr/bin/env bash
# Throughput of the metering and gating hot paths, each against its
# physical limit, measured by pgbench in one run on one server:
#   record_usage          vs  a plain INSERT into a table indexed like a
#                             partition of usage.events (primary key, the
#                             meter-and-time and meter indexes, the unique
#                             key index)
#   record_usage_batch    vs  a multi-row INSERT of the same 1,000 rows into it
#   check_feature_access  vs  a primary-key lookup of the same plan_features row
# Both sides run as the same signed-in member (role authenticated with the
# request.jwt.claims PostgREST sets), 4 clients, 2 threads. Each side runs
# twice, alternating (A B A B), and the ratio is of the summed rates.
#
#   bench/usage_and_features.sh [SECONDS] [15|18]
#
# Server (bench/server.sh): Debian's PostgreSQL 15 with 15, the embedded
# server of `tenantdb up --data-dir bench/.pg` with 18 (the default), or
# the server of $BENCH_DSN (a superuser DSN); database usage_bench, made
# anew for each run (the event and key tables grow with every run).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-15}"
server="${2:-18}"
py="${PYTHON:-python3}"
pgbench="${PGBENCH:-$(ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | sort -V | tail -n 1)}"
[ -x "$pgbench" ] || { echo "pgbench not found (Debian: postgresql-15); set PGBENCH" >&2; exit 1; }
BENCH_DSN=$(bench/server.sh "$server" usage_bench fresh)
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
create unique index on public.bench_plain_events (organization_id, idempotency_key);
grant insert on public.bench_plain_events to authenticated;
SQL

cat > "$dir/record_usage.sql" <<SQL
select * from public.record_usage('$org', 'api_call', 1, gen_random_uuid()::text);
SQL
cat > "$dir/plain_insert.sql" <<SQL
insert into public.bench_plain_events (organization_id, meter_key, quantity, idempotency_key, occurred_at)
values ('$org', 'api_call', 1, gen_random_uuid()::text, now());
SQL
cat > "$dir/record_usage_batch.sql" <<SQL
select count(*) from public.record_usage_batch('$org', (select jsonb_agg(jsonb_build_object('feature_key', 'api_call', 'quantity', 1, 'idempotency_key', gen_random_uuid()::text)) from generate_series(1, 1000)));
SQL
cat > "$dir/multi_row_insert.sql" <<SQL
insert into public.bench_plain_events (organization_id, meter_key, quantity, idempotency_key, occurred_at)
select '$org', 'api_call', 1, gen_random_uuid()::text, now() from generate_series(1, 1000);
SQL
# The floor of record_usage_batch: the one multi-row INSERT it makes, into
# usage.events itself (its partition, indexes and checks, ON CONFLICT DO
# NOTHING on the partition's key index), as plain SQL, no checks.
cat > "$dir/batch_writes.sql" <<SQL
insert into usage.events (organization_id, meter_key, quantity, idempotency_key, occurred_at)
select '$org', 'api_call', 1, gen_random_uuid()::text, now() from generate_series(1, 1000)
on conflict do nothing;
SQL
# The second baseline: a plain INSERT of one event into usage.events itself
# (partition routing, its checks and triggers; as the superuser, since
# clients may not write it), the "same table" of an independent harness.
cat > "$dir/events_insert.sql" <<SQL
insert into usage.events (organization_id, meter_key, quantity, idempotency_key, occurred_at)
values ('$org', 'api_call', 1, gen_random_uuid()::text, now()) on conflict do nothing;
SQL
cat > "$dir/check_feature_access.sql" <<SQL
select public.check_feature_access('$uid', 'max_api_calls_per_month', '$org');
SQL
cat > "$dir/pk_lookup.sql" <<SQL
select * from catalog.plan_features where plan_key = 'free' and feature_key = 'max_api_calls_per_month';
SQL

export PGOPTIONS="-c role=authenticated -c request.jwt.claims={\"sub\":\"$uid\",\"role\":\"authenticated\"}"
tps() { "$pgbench" -n -c 4 -j 2 -T "$seconds" -f "$dir/$1.sql" "$BENCH_DSN" 2>&1 | awk '/^tps/ {printf "%.1f", $3; exit}'; }
# pair A B: "rateA rateB", each the sum of two alternating runs
pair() { local a1 b1 a2 b2; a1=$(tps "$1"); b1=$(tps "$2"); a2=$(tps "$1"); b2=$(tps "$2"); echo "$(echo "$a1 + $a2" | bc) $(echo "$b1 + $b2" | bc)"; }
echo "server: $(psql -X -At -d "$BENCH_DSN" -c 'show server_version'); jit: $(psql -X -At -d "$BENCH_DSN" -c 'show jit'); $seconds s per run, 4 clients"
read -r plain usage < <(pair plain_insert record_usage)
read -r multi batch < <(pair multi_row_insert record_usage_batch)
read -r pk gate < <(pair pk_lookup check_feature_access)
floor=$(PGOPTIONS="" tps batch_writes)  # as the superuser: clients may not write these tables
same=$(PGOPTIONS="" tps events_insert)
"$py" - "$plain" "$usage" "$multi" "$batch" "$pk" "$gate" "$floor" "$same" <<'PY'
import sys
plain, usage, multi, batch, pk, gate = (float(a) / 2 for a in sys.argv[1:7])
floor, same = float(sys.argv[7]), float(sys.argv[8])
print(f"plain INSERT                 {plain:>9.0f} tps")
print(f"record_usage                 {usage:>9.0f} tps   ratio {usage / plain:.2f}  (goal >= 0.6)")
print(f"  INSERT into usage.events   {same:>9.0f} tps   record_usage / it {usage / same:.2f}  (the second baseline)")
print(f"multi-row INSERT, 1000 rows  {multi:>9.1f} tps = {multi * 1000:>9.0f} events/s")
print(f"record_usage_batch, 1000     {batch:>9.1f} tps = {batch * 1000:>9.0f} events/s   ratio {batch / multi:.2f}  (goal >= 0.5 and >= 150000 events/s)")
print(f"  its INSERT as plain SQL     {floor:>8.1f} tps = {floor * 1000:>9.0f} events/s   ratio {floor / multi:.2f}  (the floor; batch / it {batch / floor:.2f}, the second baseline)")
print(f"primary-key lookup           {pk:>9.0f} tps")
print(f"check_feature_access         {gate:>9.0f} tps   ratio {gate / pk:.2f}  (goal >= 0.3)")
PY
unset PGOPTIONS
psql -X -q -d "$BENCH_DSN" -c "drop table public.bench_plain_events"
