-- Every table of a domain schema has row-level security enabled and forced.
{% import 'sql/macros.sql' as m with context %}
select 'rls' as check, format('%I.%I', n.nspname, c.relname) as object,
       case when not c.relrowsecurity then 'row level security is not enabled'
            else 'row level security is not forced' end as detail
  from pg_catalog.pg_class c
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
 where c.relkind in ('r', 'p')
   and n.nspname in ({{ m.schema_list() }})
   and not c.relispartition
   and not (c.relrowsecurity and c.relforcerowsecurity)
