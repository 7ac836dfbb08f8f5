-- A tenant table (one with an organization_id column) lives in a schema
-- verify checks: the package's domain schemas and the app project's
-- (tenantdb.toml, app.schemas). One anywhere else would skip every check
-- above -- forced row-level security, keys, length bounds -- and verify
-- would say ok for it. Left out: the package's own private schema, the
-- system's, and the tables of extensions. tenantdb's bookkeeping schema
-- holds no tenant table: one there is an app migration's unqualified name
-- (changes run with search_path tenantdb).
{% import 'sql/macros.sql' as m with context %}
select 'covered' as check, format('%I.%I', n.nspname, c.relname) as object,
       case when n.nspname = 'tenantdb'
            then 'table with an organization_id column in tenantdb''s bookkeeping schema (where a migration''s '
                 'unqualified name lands): name the table with its schema, one of app.schemas of the app project''s '
                 'tenantdb.toml, in a new migration that moves it (alter table ... set schema)'
            else format('table with an organization_id column in schema %s, which verify does not check (row-level '
                        'security, keys, length bounds): list the schema in app.schemas of the app project''s '
                        'tenantdb.toml, or move the table to a schema listed there', n.nspname) end as detail
  from pg_catalog.pg_class c
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
  join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attname = 'organization_id' and not a.attisdropped
 where c.relkind in ('r', 'p') and not c.relispartition
   and n.nspname not in ({{ m.schema_list() }}, 'private', 'pg_catalog', 'information_schema')
   and n.nspname !~ '^pg_(toast|temp_|toast_temp_)'
   and not exists (select from pg_catalog.pg_depend d where d.objid = c.oid and d.deptype = 'e')
