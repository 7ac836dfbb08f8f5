-- Views in domain and API schemas run with the caller's rights.
{% import 'sql/macros.sql' as m with context %}
select 'view' as check, format('%I.%I', n.nspname, c.relname) as object,
       'view is not security_invoker' as detail
  from pg_catalog.pg_class c
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
 where c.relkind = 'v'
   and n.nspname in ({{ m.schema_list() }}, '{{ api }}')
   and not exists (select from pg_catalog.pg_depend d where d.objid = c.oid and d.deptype = 'e')
   and not coalesce('security_invoker=true' = any (c.reloptions) or 'security_invoker=on' = any (c.reloptions), false)
