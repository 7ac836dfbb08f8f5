-- The dataset of bench/rls_scale.sh (run by psql as a superuser on a
-- migrated and seeded database):
--   * 100 users signed up the normal way (insert into auth.users: profile,
--     personal organization, owner membership, free subscription);
--   * 10,000 organizations: those 100 personal ones, one filler owner's,
--     and 9,899 business organizations owned by the filler;
--   * memberships: bench user 0 in 1 organization (its own), user 1 in 50,
--     users 2-99 in 3-5 (tenant_admin in the business ones);
--   * 1,000,000 rows in usage.events (100 per organization, over the last
--     three months) and 1,000,000 in billing.invoices (100 monthly periods
--     per organization);
--   * a big tenant: user "big" (signed up: a personal organization) is
--     tenant_admin of organization "Bench big", which holds 100,000 usage
--     events, 100,000 invoices (daily periods) and 100,000 CRM clients
--     (every business organization has 10);
--   * user "wide" (signed up) is tenant_admin of 500 business
--     organizations.
-- Bulk rows are written with session_replication_role = replica (no audit
-- rows or free subscriptions for the filler organizations: the benchmark
-- reads, it does not bill).
\set ON_ERROR_STOP on
set client_min_messages = warning;

insert into auth.users (email)
select format('rls-bench-%s@bench.test', n) from generate_series(0, 100) n;
insert into auth.users (email) values ('rls-bench-big@bench.test'), ('rls-bench-wide@bench.test');

create temporary table bench_users as
select n, u.id
  from generate_series(0, 100) n
  join auth.users u on u.email = format('rls-bench-%s@bench.test', n);

set session_replication_role = replica;

-- 9,899 business organizations, owned by the filler (user 100).
create temporary table bench_orgs as
select n, gen_random_uuid() as id from generate_series(1, 9899) n;
insert into tenancy.organizations (id, name, slug)
select id, format('Bench org %s', n), format('rls-bench-org-%s', n) from bench_orgs;
insert into tenancy.memberships (organization_id, user_id, role_key)
select o.id, (select id from bench_users where n = 100), 'tenant_owner' from bench_orgs o;

-- User 1: 49 business organizations; users 2-99: 2-4 each.
insert into tenancy.memberships (organization_id, user_id, role_key)
select o.id, u.id, 'tenant_admin'
  from bench_users u
  join bench_orgs o
    on (u.n = 1 and o.n between 1 and 49)
    or (u.n between 2 and 99 and o.n between 50 + (u.n - 2) * 4 and 50 + (u.n - 2) * 4 + (u.n % 3) + 1);

-- 1,000,000 usage events: 100 per organization over the last 90 days.
select private.ensure_usage_partition((current_date - make_interval(months => k))::date) from generate_series(0, 3) k;
insert into usage.events (organization_id, meter_key, quantity, idempotency_key, occurred_at)
select o.id, 'api_call', 1 + (i % 7), format('bench-%s', i),
       now() - make_interval(secs => ((hashtext(o.id::text || i) & 2147483647) % 7776000))
  from tenancy.organizations o
 cross join generate_series(1, 100) i;

-- 1,000,000 invoices: 100 monthly periods per organization, paid.
insert into billing.invoices (organization_id, period_start, period_end, currency, status, total_minor, finalized_at, paid_at)
select o.id, p.start, (p.start + interval '1 month')::date, 'USD', 'paid', 1000 + i, p.start + interval '1 month', p.start + interval '40 days'
  from tenancy.organizations o
 cross join generate_series(1, 100) i
 cross join lateral (select (date '2018-01-01' + make_interval(months => i))::date as start) p;

-- The big tenant and its member; the member of 500.
insert into tenancy.organizations (id, name, slug) values ('00000000-0000-4000-8000-00000000b16b', 'Bench big', 'rls-bench-big');
insert into tenancy.memberships (organization_id, user_id, role_key)
select '00000000-0000-4000-8000-00000000b16b', id, 'tenant_admin' from auth.users where email = 'rls-bench-big@bench.test';
insert into tenancy.memberships (organization_id, user_id, role_key)
select o.id, u.id, 'tenant_admin'
  from bench_orgs o cross join auth.users u
 where u.email = 'rls-bench-wide@bench.test' and o.n between 1000 and 1499;

-- Its 100,000 of each.
insert into usage.events (organization_id, meter_key, quantity, idempotency_key, occurred_at)
select '00000000-0000-4000-8000-00000000b16b', 'api_call', 1, format('bench-big-%s', i),
       now() - make_interval(secs => ((hashtext('big' || i) & 2147483647) % 7776000))
  from generate_series(1, 100000) i;
insert into billing.invoices (organization_id, period_start, period_end, currency, status, total_minor, finalized_at, paid_at)
select '00000000-0000-4000-8000-00000000b16b', d, d + 1, 'USD', 'paid', 1000, d + 1, d + 40
  from generate_series(1, 100000) i cross join lateral (select date '1800-01-01' + i as d) p;

-- And 100,000 CRM clients (each with a person key of its own), plus 10
-- in every other organization the wide member belongs to.
insert into crm.people (id, first_name, last_name, created_at)
select md5('rls-bench-person-' || i)::uuid, 'First' || i, 'Last' || i, now() - make_interval(secs => i)
  from generate_series(1, 100000) i;
insert into crm.org_clients (organization_id, id, person_id, status, first_name, last_name, search_name, created_at, updated_at)
select '00000000-0000-4000-8000-00000000b16b', gen_random_uuid(), md5('rls-bench-person-' || i)::uuid, 'active',
       'First' || i, 'Last' || i, lower('first' || i || ' last' || i), now() - make_interval(secs => i), now() - make_interval(secs => i)
  from generate_series(1, 100000) i;
insert into crm.people (id, first_name, created_at)
select md5('rls-bench-small-person-' || o.n || '-' || i)::uuid, 'Small' || i, now()
  from bench_orgs o cross join generate_series(1, 10) i;
insert into crm.org_clients (organization_id, id, person_id, status, first_name, search_name, created_at, updated_at)
select o.id, gen_random_uuid(), md5('rls-bench-small-person-' || o.n || '-' || i)::uuid, 'active', 'Small' || i, 'small' || i,
       now() - make_interval(secs => i), now()
  from bench_orgs o cross join generate_series(1, 10) i;

set session_replication_role = origin;
-- The memberships above were written with triggers off: derive their
-- access rows (what a bulk loader does; the release before had no
-- rebuild function: its view fills its table, so this script measures
-- both).
do $rebuild$
begin
  if to_regprocedure('private.rebuild_tenant_access()') is not null then
    perform private.rebuild_tenant_access();
  else
    delete from private.tenant_access;
    insert into private.tenant_access (user_id, permission_key, organization_id, role_key, organization_status)
    select user_id, permission_key, organization_id, role_key, organization_status from private.tenant_access_source;
  end if;
end
$rebuild$;
vacuum analyze usage.events, billing.invoices, crm.people, crm.org_clients, tenancy.organizations, tenancy.memberships,
               private.tenant_access;
