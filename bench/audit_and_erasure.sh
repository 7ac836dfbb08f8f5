#!/usr/bin/env bash
# 1. What the audit trigger adds to a privileged write: pgbench updates one
#    plan_features row (a plan change, audited) with the trigger, then with
#    it disabled, in one run on one server (4 clients, 2 threads).
# 2. The time of erase_user for a user with data in every domain (profile,
#    auth, sessions, credentials, invitations, organizations, usage,
#    credits, invoices, audit rows, consents, requests): 20 users, median.
#
#   bench/audit_and_erasure.sh [SECONDS]
#
# Server: $BENCH_DSN (a superuser DSN), else the embedded server of
# `tenantdb up --data-dir bench/.pg`.
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
trap 'rm -rf "$dir"; psql -X -q -d "$BENCH_DSN" -c "alter table catalog.plan_features enable trigger audit_platform_action" >/dev/null' EXIT
cat > "$dir/write.sql" <<'SQL'
update catalog.plan_features set limit_value = limit_value where plan_key = 'pro' and feature_key = 'max_records';
SQL
tps() { "$pgbench" -n -c 4 -j 2 -T "$seconds" -f "$dir/write.sql" "$BENCH_DSN" 2>&1 | awk '/^tps/ {print int($3); exit}'; }
echo "server: $(psql -X -At -d "$BENCH_DSN" -c 'show server_version'), $seconds s per run, 4 clients"
with=$(tps)
psql -X -q -d "$BENCH_DSN" -c "alter table catalog.plan_features disable trigger audit_platform_action"
without=$(tps)
psql -X -q -d "$BENCH_DSN" -c "alter table catalog.plan_features enable trigger audit_platform_action"
echo "privileged write with audit trigger     $with tps"
echo "privileged write without audit trigger  $without tps   (with / without = $("$py" -c "print(f'{$with / $without:.2f}')"))"

psql -X -q -At -d "$BENCH_DSN" <<'SQL'
create temporary table erase_times (ms numeric);
do $bench$
declare
  u uuid; org uuid; other uuid; oorg uuid; started timestamptz; i int;
begin
  select id into other from auth.users where email = 'bench-inviter@bench.test';
  if other is null then
    insert into auth.users (email) values ('bench-inviter@bench.test') returning id into other;
  end if;
  select id into oorg from tenancy.organizations where personal_owner_id = other;
  for i in 1..20 loop
    insert into auth.users (email, raw_user_meta_data)
    values (format('erase-%s-%s@bench.test', i, gen_random_uuid()), '{"full_name": "Erase Me"}') returning id into u;
    select id into org from tenancy.organizations where personal_owner_id = u;
    update identity.users set first_name = 'Erase', last_name = 'Me', personal_city = 'Porto' where id = u;
    if to_regclass('identity.sessions') is not null then
      execute 'insert into identity.sessions (user_id, token_hash, expires_at, ip_address) values ($1, md5($1::text) || md5($1::text), now() + interval ''1 day'', ''192.0.2.1'')' using u;
      execute 'insert into identity.accounts (user_id, provider_id, account_id, password_hash) values ($1, ''credential'', $1::text, ''h'')' using u;
    end if;
    insert into tenancy.invitations (organization_id, email, role_key, token_hash, invited_by)
    values (oorg, (select email from auth.users where id = u), 'tenant_member', md5(u::text) || md5(u::text), other);
    perform public.record_usage(org, 'api_call', 5, 'erase-bench');
    perform public.post_credit(org, 100, 'USD', 'promo', 'erase-bench', 'bench');
    perform public.generate_invoice(org, (select start_date from private.billing_period(org, now())));
    insert into privacy.consents (user_id, purpose, status, legal_basis, policy_version) values (u, 'newsletter', 'granted', 'consent', 'v1');
    insert into privacy.subject_requests (user_id, request_type) values (u, 'erasure');
    started := clock_timestamp();
    perform public.erase_user(u);
    insert into erase_times values (extract(epoch from clock_timestamp() - started) * 1000);
  end loop;
end
$bench$;
select format('erase_user, user with data in every domain: median %s ms, max %s ms (20 users)',
              round(percentile_cont(0.5) within group (order by ms)::numeric, 2), round(max(ms), 2)) from erase_times;
SQL
