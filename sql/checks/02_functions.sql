-- SECURITY DEFINER only in private, pinned to search_path = pg_catalog,
-- pg_temp (pg_temp named last: with search_path = '' Postgres still looks
-- up types and tables in the caller's pg_temp first), owned by a role that
-- bypasses RLS (the tables force it), not executable by PUBLIC or anon; API
-- functions are SECURITY INVOKER. A private function a client role may
-- execute is one a client reaches by design: a trigger function, one a
-- policy or view calls (pg_depend), or one an API function calls (the
-- definer twin that checks the caller itself); any other is for the owner
-- and service_role only (a helper such as billing_period would answer
-- about any organization).
{% import 'sql/macros.sql' as m with context %}
select 'definer' as check, p.oid::regprocedure::text as object, problem as detail
  from pg_catalog.pg_proc p
  join pg_catalog.pg_namespace n on n.oid = p.pronamespace
  cross join lateral (values
    (case when p.prosecdef and n.nspname <> 'private'
          then 'SECURITY DEFINER outside the private schema' end),
    (case when p.prosecdef and not coalesce('search_path=pg_catalog, pg_temp' = any (p.proconfig), false)
          then 'SECURITY DEFINER without search_path = pg_catalog, pg_temp' end),
    (case when p.prosecdef and not exists (select from pg_catalog.pg_roles r
                                            where r.oid = p.proowner and (r.rolsuper or r.rolbypassrls))
          then 'SECURITY DEFINER owned by a role that does not bypass row level security' end),
    (case when n.nspname = 'private'
               and exists (select from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a where a.grantee = 0 and a.privilege_type = 'EXECUTE')
          then 'private function executable by PUBLIC' end),
    (case when n.nspname = 'private' and exists (select from pg_catalog.pg_roles r where r.rolname = 'anon')
               and has_function_privilege('anon', p.oid, 'execute')
          then 'private function executable by anon' end),
    (case when n.nspname = 'private'
               and exists (select from pg_catalog.pg_roles r
                            where r.rolname in ('authenticated', 'platform_staff')
                              and has_function_privilege(r.oid, p.oid, 'execute'))
               and p.prorettype <> 'pg_catalog.trigger'::pg_catalog.regtype
               and not exists (select from pg_catalog.pg_depend d
                                where d.refobjid = p.oid and d.classid in ('pg_catalog.pg_policy'::regclass, 'pg_catalog.pg_rewrite'::regclass))
               and not exists (select from pg_catalog.pg_proc a
                                where a.pronamespace = '{{ api }}'::regnamespace
                                  and a.prosrc ~ ('private\.' || p.proname || '\('))
          then 'private function executable by client roles that no policy, view or API function calls: grant it to service_role only' end)
  ) as v (problem)
 where n.nspname in ({{ m.schema_list() }}, 'private', '{{ api }}')
   and not exists (select from pg_catalog.pg_depend d where d.objid = p.oid and d.deptype = 'e')
   and problem is not null
