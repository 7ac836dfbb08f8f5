#!/usr/bin/env bash
# Creating a project with its gate and meter (issue 12) against a plain
# INSERT into the same table without them.
#
# Database: bench/server.sh's projects_bench, made fresh each run. One
# organization on the business plan (max_projects 10,000 with an overage
# price: the gate is evaluated and lets every insert through, as for any
# organization under its limit or billed for overage); its owner signed up
# the normal way. The plain side is app.projects_plain, made here LIKE
# app.projects (same columns, defaults, indexes, grants and tenant insert
# policy) without the gate_and_meter trigger.
#
# Each side is a pgbench transaction as PostgREST sends it — begin;
# set_config(claims), set_config(role); insert one project; commit — by 4
# clients in one organization, for SECONDS seconds; the sides alternate,
# ROUNDS times each. Reported: transactions per second of each side (the
# mean of its rounds), their ratio (gated / plain; goal >= 0.5), and the
# median latency of each.
#
#   bench/projects.sh [15|18] [SECONDS] [ROUNDS]
#     15: Debian's PostgreSQL 15 (bench/pg15.sh); 18: the embedded server
#     of `tenantdb up --data-dir bench/.pg` (default)
set -euo pipefail
cd "$(dirname "$0")/.."
server="${1:-18}"
seconds="${2:-10}"
rounds="${3:-3}"
pgbench="${PGBENCH:-$(ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | sort -V | tail -n 1)}"
[ -x "$pgbench" ] || { echo "pgbench not found (Debian: postgresql-15); set PGBENCH" >&2; exit 1; }
dsn=$(bench/server.sh "$server" projects_bench fresh)
q() { psql -X -q -At -d "$dsn" -c "$1"; }

uid=$(q "insert into auth.users (email) values ('projects-bench@bench.test') returning id")
org=$(q "select id from tenancy.organizations where personal_owner_id = '$uid'")
q "update billing.subscriptions set plan_key = 'business' where organization_id = '$org' and status <> 'canceled'" >/dev/null
psql -X -q -d "$dsn" <<SQL >/dev/null
create table app.projects_plain (like app.projects including all);
alter table app.projects_plain enable row level security;
alter table app.projects_plain force row level security;
create policy tenant_select on app.projects_plain for select to authenticated
  using (organization_id = any ((select private.org_ids_with_permission('tenant.read'))::uuid[]));
create policy tenant_insert on app.projects_plain for insert to authenticated
  with check (organization_id = any ((select private.org_ids_with_permission('project.create'))::uuid[]));
grant select on app.projects_plain to authenticated;
grant insert (organization_id, id, title, description) on app.projects_plain to authenticated;
SQL
claims="{\"sub\":\"$uid\",\"role\":\"authenticated\"}"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
for side in projects projects_plain; do
  cat > "$dir/$side.sql" <<SQL
begin;
select set_config('request.jwt.claims', '$claims', true), set_config('role', 'authenticated', true);
insert into app.$side (organization_id, title) values ('$org', 'project ' || :client_id);
commit;
SQL
done

# run SIDE: one pgbench run; prints "tps median_latency_µs"
run() {
  rm -f "$dir"/log*
  "$pgbench" -n -c 4 -j 2 -T "$seconds" -l --log-prefix="$dir/log" -f "$dir/$1.sql" "$dsn" >/dev/null 2>&1
  cat "$dir"/log* | awk -v s="$seconds" '{print $3}' | sort -n | awk -v s="$seconds" '
    {v[NR] = $1} END {printf "%.0f %d\n", NR / s, v[int((NR + 1) / 2)]}'
}
declare -A tps lat
for side in projects projects_plain; do tps[$side]=0; lat[$side]=""; done
for round in $(seq "$rounds"); do
  for side in projects projects_plain; do
    read -r t l < <(run "$side")
    tps[$side]=$(( ${tps[$side]} + t ))
    lat[$side]="${lat[$side]} $l"
  done
done
echo "server: $(q 'select version()')"
echo "4 clients, one organization, $rounds rounds of $seconds s per side, alternating"
for side in projects projects_plain; do
  printf '%-32s %8s tps   median latency per round (µs):%s\n' "$side" "$(( ${tps[$side]} / rounds ))" "${lat[$side]}"
done
echo "ratio gated / plain: $(echo "scale=2; ${tps[projects]} / ${tps[projects_plain]}" | bc) (goal >= 0.5)"
echo "projects: $(q "select count(*) from app.projects"), live count $(q "select quantity from usage.live_counts where organization_id = '$org' and meter_key = 'projects'"), usage events $(q "select count(*) from usage.events where meter_key = 'projects'")"
