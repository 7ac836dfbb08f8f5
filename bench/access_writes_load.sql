-- The dataset of bench/access_writes.sh (run by psql as a superuser on a
-- migrated and seeded database):
--   * 100,000 filler users (access-bench-N), each tenant_member of 10 of
--     20,000 business organizations (50 members each): 1,000,000
--     memberships;
--   * an owner user (access-bench-owner), tenant_owner of every bench
--     organization (so that the commit-time owner check passes);
--   * access-bench-big: an organization of 509 members (the owner and
--     filler users 0-507); access-bench-small: its owner only;
--   * access-bench-fifty: tenant_member of 50 organizations;
--     access-bench-none: a member of none; access-bench-joiner: the user
--     the benchmark adds (never a member at rest);
--   * bench.memberships_plain: a copy of tenancy.memberships without
--     triggers (same columns, checks, indexes and foreign keys), holding the
--     same rows except those of the fixture users; bench.organizations_plain:
--     a copy of tenancy.organizations with no triggers, no foreign keys and
--     nothing referencing it, holding the same rows.
-- Users are written straight into auth.users and identity.users, and
-- everything with session_replication_role = replica: no signup
-- provisioning (no personal organizations, profiles' side effects or free
-- subscriptions), no foreign key checks (the rows are consistent by
-- construction), no triggers. The derived private.tenant_access is then
-- built in one statement, by private.rebuild_tenant_access() where the
-- schema has it, else from today's source view.
\set ON_ERROR_STOP on
set client_min_messages = warning;
set session_replication_role = replica;

create temporary table bench_users as
select n, gen_random_uuid() as id, format('access-bench-%s@bench.test', n) as email from generate_series(0, 99999) n;
insert into bench_users
select -k, gen_random_uuid(), format('access-bench-%s@bench.test', name)
  from unnest(array['owner', 'fifty', 'none', 'joiner']) with ordinality f(name, k);
insert into auth.users (id, email) select id, email from bench_users;
insert into identity.users (id, email) select id, email from bench_users;

create temporary table bench_orgs as
select n, gen_random_uuid() as id, format('access-bench-org-%s', n) as slug from generate_series(0, 19999) n;
insert into bench_orgs values (-1, gen_random_uuid(), 'access-bench-big'), (-2, gen_random_uuid(), 'access-bench-small');
insert into tenancy.organizations (id, name, slug) select id, format('Access bench %s', slug), slug from bench_orgs;

-- The owner everywhere; filler user u in organizations 10u .. 10u + 9
-- (mod 20,000); the big organization; the user in 50.
insert into tenancy.memberships (organization_id, user_id, role_key)
select o.id, u.id, 'tenant_owner' from bench_orgs o, bench_users u where u.email = 'access-bench-owner@bench.test';
insert into tenancy.memberships (organization_id, user_id, role_key)
select o.id, u.id, 'tenant_member'
  from bench_users u cross join generate_series(0, 9) k
  join bench_orgs o on o.n = (u.n * 10 + k) % 20000
 where u.n >= 0;
insert into tenancy.memberships (organization_id, user_id, role_key)
select o.id, u.id, 'tenant_member' from bench_orgs o, bench_users u where o.n = -1 and u.n between 0 and 507;
insert into tenancy.memberships (organization_id, user_id, role_key)
select o.id, u.id, 'tenant_member' from bench_orgs o, bench_users u
 where o.n between 0 and 49 and u.email = 'access-bench-fifty@bench.test';

-- The derived table, in one statement.
do $$
begin
  if to_regprocedure('private.rebuild_tenant_access()') is not null then
    perform private.rebuild_tenant_access();
  else
    insert into private.tenant_access (user_id, permission_key, organization_id, role_key, organization_status)
    select user_id, permission_key, organization_id, role_key, organization_status from private.tenant_access_source;
  end if;
end
$$;

-- The baselines' tables: no triggers; the memberships copy keeps the same
-- foreign keys (same checks on insert), the organizations copy has none.
create schema if not exists bench;
create table bench.memberships_plain (like tenancy.memberships including all);
do $$
declare
  c record;
begin
  for c in select conname, pg_get_constraintdef(oid) as def from pg_constraint
            where conrelid = 'tenancy.memberships'::regclass and contype = 'f' loop
    execute format('alter table bench.memberships_plain add constraint %I %s', c.conname, c.def);
  end loop;
end
$$;
insert into bench.memberships_plain
select * from tenancy.memberships
 where user_id not in (select id from bench_users where n < 0 and email <> 'access-bench-owner@bench.test');
create table bench.organizations_plain (like tenancy.organizations including all);
insert into bench.organizations_plain select * from tenancy.organizations;

set session_replication_role = origin;
vacuum analyze auth.users, identity.users, tenancy.organizations, tenancy.memberships, private.tenant_access,
               bench.memberships_plain, bench.organizations_plain;
