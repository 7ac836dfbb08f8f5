-- Drops the CRM and what 0013 added to privacy, and the extensions and
-- schema it created (not those that were there before, nor one that other
-- objects now use).
alter table privacy.data_inventory disable trigger user;
delete from privacy.data_inventory where schema_name = 'crm';
alter table privacy.data_inventory enable trigger user;
drop table if exists privacy.person_erasures;
alter table privacy.data_inventory drop constraint if exists data_inventory_subject_match_known;
alter table privacy.data_inventory add constraint data_inventory_subject_match_known
  check (subject_match in ('user_id', 'email'));
drop schema if exists crm cascade;
do $ext$
declare
  e text;
begin
  foreach e in array array['btree_gin', 'btree_gist', 'pg_trgm'] loop
    if obj_description((select x.oid from pg_catalog.pg_extension x where x.extname = e), 'pg_extension') = 'installed by tenantdb 0013_crm' then
      begin
        execute format('drop extension %I', e);
      exception when dependent_objects_still_exist then
        raise notice 'extension % is used by other objects: kept', e;
      end;
    end if;
  end loop;
  if obj_description(to_regnamespace('extensions'), 'pg_namespace') like '%created by tenantdb 0013_crm%' then
    begin
      drop schema extensions;
    exception when dependent_objects_still_exist then
      raise notice 'schema extensions holds other objects: kept';
    end;
  end if;
end
$ext$;
