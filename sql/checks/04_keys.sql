-- Every table has a primary key; every foreign key has an index that
-- starts with its columns.
{% import 'sql/macros.sql' as m with context %}
select 'primary_key' as check, format('%I.%I', n.nspname, c.relname) as object, 'table has no primary key' as detail
  from pg_catalog.pg_class c
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
 where c.relkind in ('r', 'p') and not c.relispartition
   and n.nspname in ({{ m.schema_list() }})
   and not exists (select from pg_catalog.pg_constraint k where k.conrelid = c.oid and k.contype = 'p')
union all
select 'fk_index', format('%I.%I', n.nspname, c.relname),
       format('foreign key %s has no index starting with its columns', k.conname)
  from pg_catalog.pg_constraint k
  join pg_catalog.pg_class c on c.oid = k.conrelid
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
 where k.contype = 'f'
   and n.nspname in ({{ m.schema_list() }})
   and not exists (
     select from pg_catalog.pg_index i
      where i.indrelid = k.conrelid
        and (i.indkey::int2[])[0:array_length(k.conkey, 1) - 1] @> k.conkey
        and (i.indkey::int2[])[0:array_length(k.conkey, 1) - 1] <@ k.conkey)
