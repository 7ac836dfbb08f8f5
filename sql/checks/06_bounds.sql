-- Every text and jsonb column of a domain schema has a length bound (a
-- check constraint on length() or pg_column_size(), named <table>_<column>_length
-- by migration 0012): no 5 MB bio, no 3,000-character email.
{% import 'sql/macros.sql' as m with context %}
select 'bounds' as check, format('%I.%I.%I', n.nspname, c.relname, a.attname) as object,
       format('%s column without a length bound: add a check constraint %s_%s_length', format_type(a.atttypid, a.atttypmod),
              c.relname, a.attname) as detail
  from pg_catalog.pg_attribute a
  join pg_catalog.pg_class c on c.oid = a.attrelid
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
 where c.relkind in ('r', 'p') and not c.relispartition and a.attnum > 0 and not a.attisdropped
   and n.nspname in ({{ m.schema_list() }})
   and a.atttypid in ('text'::regtype, 'jsonb'::regtype)
   and not exists (select from pg_catalog.pg_constraint k
                    where k.conrelid = c.oid and k.contype = 'c' and a.attnum = any (k.conkey)
                      and pg_catalog.pg_get_constraintdef(k.oid) ~ '(length|pg_column_size)\(')
