#!/usr/bin/env bash
# What keeping the derived private.tenant_access costs the writes that
# change it: memberships, roles, organization status, users, role
# permissions.
#
# Dataset (bench/access_writes_load.sql, loaded once into database
# access_bench, timed separately; one database for every figure): 100,000
# users, tenant_member of 10 of 20,000 organizations each (1,000,000
# memberships), one owner in every organization, an organization of 509
# members, a user in 50 organizations, and copies of memberships and
# organizations without triggers. The load fills private.tenant_access with
# private.rebuild_tenant_access() where the schema has it, else from the
# previous release's view private.tenant_access_source: the same script
# measures either design (both in docs/benchmarks.md).
#
# Each figure is the median latency (ms) of REPEATS transactions
#   begin; WRITE; set constraints all immediate; rollback
# (the deferred checks run as at commit; nothing stays written), on one
# connection, interleaved at random with its baseline in the same pgbench
# run:
#   add a member      insert a tenant_member membership; baseline: the same
#                     insert into bench.memberships_plain (same columns,
#                     checks, indexes and foreign keys; no triggers)
#   member -> admin   update role_key of one membership; baseline: the same
#                     update of bench.memberships_plain
#   suspend           update an organization's status (509 members, then
#                     1); baseline: the same update of
#                     bench.organizations_plain (no triggers, nothing
#                     referencing it: the bare row update)
#   delete a user     delete from auth.users (cascading through
#                     identity.users to the memberships) of a user in 50,
#                     then 11 organizations; baseline: deleting a user in
#                     none (the same cascades and triggers minus the
#                     memberships')
# Then a grant at scale: adding a tenant permission tenant_member lacks to
# tenant_member (held by 1,000,000 memberships), rolled back, GRANT_REPEATS
# times (default 3); meanwhile another session adds a tenant_member 100 ms
# after the grant began, and the grant's transaction stays open until that
# join has written its row: the join's latency is how long a join waits
# for a grant (about the grant's time less those 100 ms, when it waits).
# private.tenant_access is vacuumed after each grant.
#
#   bench/access_writes.sh [15|18] [REPEATS]
#     15: Debian's PostgreSQL 15 (bench/pg15.sh, the test harness's server)
#     18: the embedded server of `tenantdb up --data-dir bench/.pg` (default)
#     REPEATS: transactions per side of each figure (default 50)
#   BENCH_DSN overrides the server: a superuser DSN of any database there
#   (bench/server.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
server="${1:-18}"
repeats="${2:-50}"
grant_repeats="${GRANT_REPEATS:-3}"
pgbench="${PGBENCH:-$(ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | sort -V | tail -n 1)}"
[ -x "$pgbench" ] || { echo "pgbench not found (Debian: postgresql-15); set PGBENCH" >&2; exit 1; }
dsn=$(bench/server.sh "$server" access_bench)
q() { psql -X -q -At -d "$dsn" -c "$1"; }
if [ "$(q "select count(*) from auth.users where email = 'access-bench-joiner@bench.test'")" = "0" ]; then
  started=$(date +%s.%N)
  psql -X -q -d "$dsn" -f bench/access_writes_load.sql >/dev/null
  echo "dataset loaded in $(echo "$(date +%s.%N) - $started" | bc) s"
fi

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

uid() { q "select id from auth.users where email = 'access-bench-$1@bench.test'"; }
org() { q "select id from tenancy.organizations where slug = 'access-bench-$1'"; }
joiner=$(uid joiner) fifty=$(uid fifty) none=$(uid none) user0=$(uid 0) user1=$(uid 1)
org0=$(org org-0) big=$(org big) small=$(org small)
members() { q "select count(*) from tenancy.memberships where $1"; }

# pair LABEL WRITE BASELINE_LABEL BASELINE: one line, the median ms of each
# side's rolled-back transaction (interleaved at random, one connection)
# and their ratio.
pair() {
  printf 'begin;\n%s;\nset constraints all immediate;\nrollback;\n' "$2" > "$dir/a.sql"
  printf 'begin;\n%s;\nset constraints all immediate;\nrollback;\n' "$4" > "$dir/b.sql"
  rm -f "$dir"/log*
  (cd "$dir" && "$pgbench" -n -c 1 -t "$((2 * repeats))" -l --log-prefix="$dir/log" \
     -f "$dir/a.sql@1" -f "$dir/b.sql@1" "$dsn" >/dev/null)
  read -r a b < <(for script in 0 1; do
    awk -v s="$script" '$4 == s {print $3}' "$dir"/log* | sort -n | awk '{a[NR] = $1} END {printf "%.2f ", a[int((NR + 1) / 2)] / 1000}'
  done; echo)
  printf '%-34s %9s   %-32s %9s %7s\n' "$1" "$a" "$3" "$b" "$(echo "scale=2; $a / $b" | bc)"
}

echo "server: $(q 'show server_version'); jit: $(q 'show jit'); median of $repeats rolled-back transactions per figure"
echo "rows: tenancy.memberships $(q 'select count(*) from tenancy.memberships'), private.tenant_access $(q 'select count(*) from private.tenant_access')"
echo
printf '%-34s %9s   %-32s %9s %7s\n' write ms baseline ms ratio
pair "add a member" \
  "insert into tenancy.memberships (organization_id, user_id, role_key) values ('$org0', '$joiner', 'tenant_member')" \
  "same, bench.memberships_plain" \
  "insert into bench.memberships_plain (organization_id, user_id, role_key) values ('$org0', '$joiner', 'tenant_member')"
pair "member -> admin" \
  "update tenancy.memberships set role_key = 'tenant_admin' where organization_id = '$org0' and user_id = '$user0'" \
  "same, bench.memberships_plain" \
  "update bench.memberships_plain set role_key = 'tenant_admin' where organization_id = '$org0' and user_id = '$user0'"
for id in "$big" "$small"; do
  pair "suspend org of $(members "organization_id = '$id'") member(s)" \
    "update tenancy.organizations set status = 'suspended' where id = '$id'" \
    "same, bench.organizations_plain" \
    "update bench.organizations_plain set status = 'suspended' where id = '$id'"
done
for id in "$fifty" "$user1"; do
  pair "delete user in $(members "user_id = '$id'") org(s)" "delete from auth.users where id = '$id'" \
    "delete user in $(members "user_id = '$none'") org(s)" "delete from auth.users where id = '$none'"
done

echo
perm=$(q "select p.key from iam.permissions p
           where not p.is_platform
             and not exists (select from iam.role_permissions rp where rp.role_key = 'tenant_member' and rp.permission_key = p.key)
           order by p.key limit 1")
if [ -z "$perm" ]; then
  perm=bench.access_writes
  q "insert into iam.permissions (key, description, is_platform) values ('$perm', 'bench/access_writes.sh', false)" >/dev/null
fi
echo "Grant: add $perm to tenant_member ($(members "role_key = 'tenant_member'") memberships), rolled back; a join (tenant_member) starts meanwhile:"
# The grant holds its transaction open until the join has written its
# membership row (at most 60 s), then rolls back; the join starts 100 ms
# after the grant began (once the grant has written its row: earlier, the
# join could take the role's lock first and the grant would wait for it).
cat > "$dir/grant.sql" <<SQL
\\set ON_ERROR_STOP on
set application_name = 'access_bench_grant';
begin;
do \$\$
declare
  t0 timestamptz := clock_timestamp();
  t1 timestamptz;
begin
  insert into iam.role_permissions (role_key, role_is_system, permission_key, permission_is_platform)
  values ('tenant_member', false, '$perm', false);
  t1 := clock_timestamp();
  raise notice 'grant %', round(extract(epoch from t1 - t0)::numeric * 1000, 1);
  loop
    perform pg_stat_clear_snapshot();
    exit when exists (select from pg_stat_activity where application_name = 'access_bench_join' and backend_xid is not null)
           or clock_timestamp() > t1 + interval '60 s';
    perform pg_sleep(0.002);
  end loop;
end
\$\$;
set constraints all immediate;
rollback;
SQL
cat > "$dir/join.sql" <<SQL
\\set ON_ERROR_STOP on
set application_name = 'access_bench_join';
begin;
do \$\$
declare
  t0 timestamptz := clock_timestamp();
  grant_start timestamptz;
begin
  loop
    perform pg_stat_clear_snapshot();
    select query_start into grant_start from pg_stat_activity
     where application_name = 'access_bench_grant' and backend_xid is not null and query_start < clock_timestamp() - interval '100 ms';
    exit when found;
    if clock_timestamp() > t0 + interval '60 s' then
      raise exception 'the grant did not start';
    end if;
    perform pg_sleep(0.002);
  end loop;
  t0 := clock_timestamp();
  insert into tenancy.memberships (organization_id, user_id, role_key) values ('$org0', '$joiner', 'tenant_member');
  raise notice 'join % %', round(extract(epoch from clock_timestamp() - t0)::numeric * 1000, 1),
                           round(extract(epoch from t0 - grant_start)::numeric * 1000, 1);
end
\$\$;
set constraints all immediate;
rollback;
SQL
: > "$dir/grants"
for i in $(seq "$grant_repeats"); do
  psql -X -q -d "$dsn" -f "$dir/grant.sql" > "$dir/grant.out" 2>&1 &
  grant_pid=$!
  psql -X -q -d "$dsn" -f "$dir/join.sql" > "$dir/join.out" 2>&1 || { cat "$dir/join.out" >&2; exit 1; }
  wait "$grant_pid" || { cat "$dir/grant.out" >&2; exit 1; }
  g=$(sed -n 's/.*NOTICE:  grant //p' "$dir/grant.out")
  read -r j d < <(sed -n 's/.*NOTICE:  join //p' "$dir/join.out")
  echo "$g $j $d" >> "$dir/grants"
  printf '  run %s: grant %9s ms; join %9s ms, started %s ms after the grant began\n' "$i" "$g" "$j" "$d"
  q "vacuum private.tenant_access, tenancy.memberships, iam.role_permissions" >/dev/null
done
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
echo "  median: grant $(awk '{print $1}' "$dir/grants" | median) ms; join $(awk '{print $2}' "$dir/grants" | median) ms (alone: see 'add a member' above)"
