#!/usr/bin/env bash
# Tenant reads under RLS against the physical limit, at scale.
#
# Dataset (bench/rls_scale_load.sql, loaded once per database, timed
# separately): 10,000 organizations, 1,000,000 usage.events and 1,000,000
# billing.invoices, 100 users signed up the normal way; members of 1, 4 and
# 50 organizations; a big tenant (100,000 events and 100,000 invoices)
# with a member ("big": it and their personal organization); a member of
# 500 organizations ("wide").
#
# For each member and table, a list page (order by time desc limit 50) and
# a count(*), in four sections:
#   1. no filter, no active organization: RLS as the member against the
#      superuser with where organization_id = any(<the member's
#      organizations>) (a cross-organization page; members of 1, 4, 50);
#   2. the client's filter organization_id = x (what PostgREST apps send):
#      RLS as the member against the superuser with the same plain
#      equality, RLS not applied;
#   3. the request's active organization (claim organization_id; the
#      pre-request function scope_request switches to organization_scoped),
#      no filter: against the same plain equality;
#   4. no filter, no active organization, for "big" and "wide": absolute
#      figures (what a cross-organization page costs them).
# Each side is a pgbench transaction with the same begin / set_config /
# commit around the statement (what PostgREST sends; in section 3 both
# sides also call scope_request, which returns at once for the superuser:
# its own cost as the member is printed separately); the figure is the
# median latency of TRANSACTIONS transactions on one connection, and the
# ratio RLS / baseline (goal <= 1.2; section 3's list pages <= 5 ms). Then
# the cost of deciding the caller's organizations alone, platform staff
# reading one organization through their own role, and the EXPLAIN of
# both sides for the member of 50 organizations and for "big".
#
#   bench/rls_scale.sh [15|18] [TRANSACTIONS]
#     15: Debian's PostgreSQL 15 (bench/pg15.sh, the test harness's server)
#     18: the embedded server of `tenantdb up --data-dir bench/.pg` (default)
#   BENCH_DSN overrides the server: a superuser DSN of any database there
#   (bench/server.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
server="${1:-18}"
transactions="${2:-500}"
py="${PYTHON:-python3}"
pgbench="${PGBENCH:-$(ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | sort -V | tail -n 1)}"
[ -x "$pgbench" ] || { echo "pgbench not found (Debian: postgresql-15); set PGBENCH" >&2; exit 1; }
dsn=$(bench/server.sh "$server" rls_bench)
q() { psql -X -q -At -d "$dsn" -c "$1"; }
if [ "$(q "select count(*) from auth.users where email like 'rls-bench-%'")" = "0" ]; then
  started=$(date +%s.%N)
  psql -X -q -d "$dsn" -f bench/rls_scale_load.sql >/dev/null
  echo "dataset loaded in $(echo "$(date +%s.%N) - $started" | bc) s"
fi

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# medians: bench/lib.sh
. bench/lib.sh

superuser=$(q "select current_user")
uid() { q "select id from auth.users where email = 'rls-bench-$1@bench.test'"; }
claims() { echo "{\"sub\":\"$1\",\"role\":\"$2\"}"; }
# The organizations where the user's membership carries the permission,
# computed independently of the function under test.
orgs_of() {
  q "select '''' || array_agg(m.organization_id)::text || '''' from tenancy.memberships m
       join iam.role_permissions rp on rp.role_key = m.role_key and rp.permission_key = '$2'
      where m.user_id = '$1' and m.status = 'active'"
}

declare -A list count perm
list[usage.events]="select id, meter_key, quantity, occurred_at from usage.events %s order by occurred_at desc limit 50"
count[usage.events]="select count(*) from usage.events %s"
perm[usage.events]="tenant.read"
list[billing.invoices]="select id, period_start, status, total_minor from billing.invoices %s order by period_start desc limit 50"
count[billing.invoices]="select count(*) from billing.invoices %s"
perm[billing.invoices]="billing.view"
list[crm.org_clients]="select id, first_name, last_name, status, created_at from crm.org_clients %s order by created_at desc limit 50"
count[crm.org_clients]="select count(*) from crm.org_clients %s"
perm[crm.org_clients]="crm.read"

echo "server: $(q 'show server_version'); jit: $(q 'show jit'); median of $transactions transactions per figure"
big_org=00000000-0000-4000-8000-00000000b16b
# one organization of the member where they hold the table's permission
# (the big tenant for "big")
one_org() {
  if [ "$1" = big ]; then echo "$big_org"; return; fi
  q "select m.organization_id from tenancy.memberships m join tenancy.organizations o on o.id = m.organization_id
      where m.user_id = '$(uid "$1")' and o.personal_owner_id is null order by m.organization_id limit 1"
}
results="$dir/results"
row() { printf '%-18s %-6s %-5s %-6s %10s %10s %7s\n' "$@"; }

echo
echo "1. No filter, no active organization, vs where organization_id = any(<the member's organizations>):"
row table query who orgs "RLS µs" "any µs" ratio
: > "$results"
for table in usage.events billing.invoices; do
  for who in 0 4 1; do
    id=$(uid "$who")
    orgs=$(orgs_of "$id" "${perm[$table]}")
    n=$(q "select cardinality($orgs::uuid[])")
    for kind in list count; do
      if [ "$kind" = list ]; then tmpl=${list[$table]}; else tmpl=${count[$table]}; fi
      # shellcheck disable=SC2059
      read -r rls base < <(medians authenticated "$(printf "$tmpl" "")" \
                                   "$superuser" "$(printf "$tmpl" "where organization_id = any ($orgs::uuid[])")" \
                                   "$(claims "$id" authenticated)")
      ratio=$(echo "scale=2; $rls / $base" | bc)
      row "$table" "$kind" "$who" "$n" "$rls" "$base" "$ratio"
      echo "$ratio" >> "$results"
    done
  done
done
echo "worst ratio: $(sort -n "$results" | tail -n 1) (goal <= 1.2)"

sections="2 3"
# The release before had no active organization: section 3 needs scope_request.
[ -n "$(q "select to_regprocedure('public.scope_request()')")" ] || sections=2
for section in $sections; do
  echo
  if [ "$section" = 2 ]; then
    echo "2. The client's filter organization_id = x, vs the same plain equality without RLS:"
  else
    echo "3. Active organization x (claim organization_id, pre-request scope_request), no filter, vs where organization_id = x:"
  fi
  row table query who orgs "RLS µs" "= x µs" ratio
  : > "$results"
  for table in usage.events billing.invoices crm.org_clients; do
    for who in 4 1 big wide; do
      id=$(uid "$who")
      org=$(one_org "$who")
      n=$(q "select count(*) from tenancy.memberships where user_id = '$id'")
      for kind in list count; do
        if [ "$kind" = list ]; then tmpl=${list[$table]}; else tmpl=${count[$table]}; fi
        # shellcheck disable=SC2059
        equality=$(printf "$tmpl" "where organization_id = '$org'")
        if [ "$section" = 2 ]; then
          read -r rls base < <(medians authenticated "$equality" "$superuser" "$equality" "$(claims "$id" authenticated)")
        else
          # shellcheck disable=SC2059
          read -r rls base < <(medians authenticated "$(printf "$tmpl" "")" "$superuser" "$equality" \
                                       "{\"sub\":\"$id\",\"role\":\"authenticated\",\"organization_id\":\"$org\"}" \
                                       "public.scope_request()")
        fi
        ratio=$(echo "scale=2; $rls / $base" | bc)
        row "$table" "$kind" "$who" "$n" "$rls" "$base" "$ratio"
        echo "$ratio $kind $rls" >> "$results"
      done
    done
  done
  echo "worst ratio: $(sort -n "$results" | tail -n 1 | cut -d' ' -f1) (goal <= 1.2)"
  if [ "$section" = 3 ]; then
    echo "slowest list page: $(awk '$2 == "list" {print $3}' "$results" | sort -n | tail -n 1) µs (goal <= 5000)"
  fi
done

echo
echo "4. No filter, no active organization (a cross-organization page), absolute:"
row table query who orgs "RLS µs" "" ""
for table in usage.events billing.invoices crm.org_clients; do
  for who in big wide; do
    id=$(uid "$who")
    n=$(q "select count(*) from tenancy.memberships where user_id = '$id'")
    for kind in list count; do
      if [ "$kind" = list ]; then tmpl=${list[$table]}; else tmpl=${count[$table]}; fi
      # shellcheck disable=SC2059
      read -r rls _ < <(medians authenticated "$(printf "$tmpl" "")" authenticated "select 1" "$(claims "$id" authenticated)")
      row "$table" "$kind" "$who" "$n" "$rls" "" ""
    done
  done
done

[ "$sections" = 2 ] || {
echo
echo "The pre-request scope_request alone, as the member naming an active organization, vs select 1:"
for who in big wide; do
  id=$(uid "$who")
  read -r fn empty < <(medians authenticated "select public.scope_request()" authenticated "select 1" \
                               "{\"sub\":\"$id\",\"role\":\"authenticated\",\"organization_id\":\"$(one_org "$who")\"}")
  echo "  $who: $fn µs vs $empty µs: $((fn - empty)) µs per request"
done
}
echo
echo "Deciding the caller's organizations alone (private.org_ids_with_permission) vs select 1, same transaction:"
for who in 0 4 1 wide; do
  id=$(uid "$who")
  read -r fn empty < <(medians authenticated "select private.org_ids_with_permission('tenant.read')" \
                               authenticated "select 1" "$(claims "$id" authenticated)")
  n=$(q "select count(*) from tenancy.memberships where user_id = '$id'")
  echo "  member of $n: $fn µs vs $empty µs: $((fn - empty)) µs per statement"
done

echo
echo "Platform staff (role platform_staff, platform.tenant.read) reading one organization's list page:"
staff=$(uid 99)
q "insert into iam.system_role_grants (user_id, role_key, reason)
   select '$staff', 'platform_support', 'rls_scale benchmark'
    where not exists (select from iam.system_role_grants where user_id = '$staff' and role_key = 'platform_support' and revoked_at is null)" >/dev/null
org=$(q "select organization_id from tenancy.memberships where user_id = '$(uid 1)' order by organization_id limit 1")
stmt="select id, meter_key, quantity, occurred_at from usage.events where organization_id = '$org' order by occurred_at desc limit 50"
read -r as_staff base < <(medians platform_staff "$stmt" "$superuser" "$stmt" "$(claims "$staff" platform_staff)")
echo "  staff $as_staff µs vs superuser $base µs: ratio $(echo "scale=2; $as_staff / $base" | bc)"

echo
echo "EXPLAIN, member of 50 organizations (RLS, then baseline):"
id=$(uid 1)
for table in usage.events billing.invoices; do
  orgs=$(orgs_of "$id" "${perm[$table]}")
  for kind in list count; do
    if [ "$kind" = list ]; then tmpl=${list[$table]}; else tmpl=${count[$table]}; fi
    # shellcheck disable=SC2059
    for side in rls base; do
      if [ "$side" = rls ]; then role=authenticated; stmt=$(printf "$tmpl" ""); else role=$superuser; stmt=$(printf "$tmpl" "where organization_id = any ($orgs::uuid[])"); fi
      echo "--- $table $kind ($side)"
      psql -X -q -At -d "$dsn" <<SQL | sed 's/^/  /'
begin;
select set_config('request.jwt.claims', '$(claims "$id" authenticated)', true), set_config('role', '$role', true) \\g /dev/null
explain (costs off) $stmt;
rollback;
SQL
    done
  done
done | sed -E "s/'[{][0-9a-f,-]{200,}[}]'/'{...the member's organizations...}'/g"

echo
echo "EXPLAIN ANALYZE, \"big\" scoped to the big tenant (list pages):"
id=$(uid big)
[ "$sections" = 2 ] || for table in usage.events billing.invoices crm.org_clients; do
  # shellcheck disable=SC2059
  stmt=$(printf "${list[$table]}" "")
  echo "--- $table list (scoped)"
  psql -X -q -At -d "$dsn" <<SQL | sed 's/^/  /'
begin;
select set_config('request.jwt.claims', '{"sub":"$id","role":"authenticated","organization_id":"$big_org"}', true), set_config('role', 'authenticated', true), public.scope_request() \g /dev/null
explain (analyze, buffers, costs off, timing off, summary off) $stmt;
rollback;
SQL
done
