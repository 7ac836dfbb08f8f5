-- Citus shape: a table with an organization_id column is distributed by it,
-- so organization_id is in its primary key, in each of its unique
-- constraints and indexes, and in each foreign key to another such table.
-- Its primary key starts with organization_id: a tenant's rows are read
-- by organization first (every policy filters on it), so the key's index
-- serves those reads.
{% import 'sql/macros.sql' as m with context %}
with tenant_tables as (
  select c.oid, format('%I.%I', n.nspname, c.relname) as name, a.attnum as org_col
    from pg_catalog.pg_class c
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attname = 'organization_id' and not a.attisdropped
   where c.relkind in ('r', 'p') and not c.relispartition
     and n.nspname in ({{ m.schema_list() }})
)
select 'citus' as check, t.name as object,
       format('unique index %s does not include organization_id', i.indexrelid::regclass) as detail
  from tenant_tables t
  join pg_catalog.pg_index i on i.indrelid = t.oid and i.indisunique
 where not (t.org_col = any (i.indkey::int2[]))
union all
select 'citus', t.name, format('foreign key %s to a tenant table does not include organization_id on both sides', k.conname)
  from tenant_tables t
  join pg_catalog.pg_constraint k on k.conrelid = t.oid and k.contype = 'f'
  join tenant_tables r on r.oid = k.confrelid
 where not (t.org_col = any (k.conkey) and r.org_col = any (k.confkey))
union all
select 'citus', t.name, format('primary key %s does not start with organization_id (a tenant''s rows are read by '
                               'organization first: every policy filters on it): put organization_id first', k.conname)
  from tenant_tables t
  join pg_catalog.pg_constraint k on k.conrelid = t.oid and k.contype = 'p'
 where k.conkey[1] <> t.org_col and t.org_col = any (k.conkey)
