-- Every table of a domain schema has row-level security enabled and forced,
-- and has at most one permissive policy per role and command: Postgres ORs
-- permissive policies, and an OR of the organization filter with anything
-- else turns every read into a sequential scan (a PUBLIC policy counts for
-- every role, a FOR ALL policy for every command).
{% import 'sql/macros.sql' as m with context %}
with permissive as (
  -- one row per (policy, role, command) of every permissive policy
  select pol.polrelid, pol.polname::text as policy, r.role,
         case when r.role = 0 then 'public' else r.role::regrole::text end as role_name, cmd
    from pg_catalog.pg_policy pol
   cross join lateral unnest(pol.polroles) as r (role)
   cross join lateral unnest(case pol.polcmd when '*' then array['r', 'a', 'w', 'd'] else array[pol.polcmd::text] end) as cmd
   where pol.polpermissive
)
select 'rls' as check, format('%I.%I', n.nspname, c.relname) as object,
       case when not c.relrowsecurity then 'row level security is not enabled'
            else 'row level security is not forced' end as detail
  from pg_catalog.pg_class c
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
 where c.relkind in ('r', 'p')
   and n.nspname in ({{ m.schema_list() }})
   and not c.relispartition
   and not (c.relrowsecurity and c.relforcerowsecurity)
union all
select 'rls', format('%I.%I', n.nspname, c.relname),
       format('two permissive %s policies for role %s: %s and %s (Postgres ORs them; give each role one policy per command)',
              case a.cmd when 'r' then 'SELECT' when 'a' then 'INSERT' when 'w' then 'UPDATE' else 'DELETE' end,
              case when a.role = 0 then b.role_name else a.role_name end, a.policy, b.policy)
  from permissive a
  join permissive b
    on b.polrelid = a.polrelid and b.cmd = a.cmd and a.policy < b.policy
   and (a.role = b.role or a.role = 0 or b.role = 0)
  join pg_catalog.pg_class c on c.oid = a.polrelid
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
 where n.nspname in ({{ m.schema_list() }})
union all
-- A request scoped to its active organization (role organization_scoped)
-- has a policy wherever a signed-in one has: for each table and command
-- with a permissive policy for authenticated, one for organization_scoped
-- (macro tenant_policies writes both; the other macros name both roles).
-- Without it, scoped requests see nothing there.
select distinct 'rls', format('%I.%I', n.nspname, c.relname),
       format('no %s policy for role organization_scoped (authenticated has %s): requests scoped to an active organization '
              'see nothing here; use the policy macros',
              case a.cmd when 'r' then 'SELECT' when 'a' then 'INSERT' when 'w' then 'UPDATE' else 'DELETE' end, a.policy)
  from permissive a
  join pg_catalog.pg_class c on c.oid = a.polrelid
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
 where n.nspname in ({{ m.schema_list() }})
   and a.role_name = 'authenticated'
   and not exists (select from permissive s where s.polrelid = a.polrelid and s.cmd = a.cmd and s.role_name = 'organization_scoped')
