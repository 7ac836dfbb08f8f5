{% import 'sql/macros.sql' as m with context %}
-- Drops what 0012 added: the length bounds it generated (every check
-- constraint of a domain schema named *_length), the meters' bound, the
-- limits table.
do $bounds$
declare
  k record;
begin
  for k in select n.nspname, c.relname, con.conname
             from pg_catalog.pg_constraint con
             join pg_catalog.pg_class c on c.oid = con.conrelid
             join pg_catalog.pg_namespace n on n.oid = c.relnamespace
            where con.contype = 'c' and con.conname like '%\_length' and not c.relispartition
              and n.nspname in ('identity', 'tenancy', 'iam', 'catalog', 'billing', 'usage', 'audit', 'privacy')
              and con.conislocal
  loop
    execute format('alter table %I.%I drop constraint if exists %I', k.nspname, k.relname, k.conname);
  end loop;
end
$bounds$;
alter table catalog.meters drop constraint if exists meters_max_per_event_positive;
alter table catalog.meters drop column if exists max_per_event;
drop table if exists catalog.limits;
