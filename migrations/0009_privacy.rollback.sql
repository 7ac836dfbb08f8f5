-- Consents, requests and erasures are records the law asks to keep:
-- refuse to drop them silently.
do $keep$
begin
  if exists (select from privacy.consents) or exists (select from privacy.subject_requests) or exists (select from privacy.erasures) then
    raise exception 'rollback of 0009_privacy refused: privacy.consents, subject_requests or erasures hold records'
      using errcode = '55000', hint = 'Archive them, empty the tables as their owner, then roll back.';
  end if;
end
$keep$;
-- Take the @personal tags off the columns 0009 tagged.
do $untag$
declare
  r record;
begin
  for r in select i.schema_name, i.table_name, i.column_name,
                  col_description(format('%I.%I', i.schema_name, i.table_name)::regclass, a.attnum) as description
             from privacy.data_inventory i
             join pg_catalog.pg_attribute a on a.attrelid = to_regclass(format('%I.%I', i.schema_name, i.table_name))
                                           and a.attname = i.column_name
            where i.schema_name <> 'auth' loop
    continue when coalesce(r.description, '') not like '@personal %';
    execute format('comment on column %I.%I.%I is %L', r.schema_name, r.table_name, r.column_name,
                   nullif(substr(r.description, length('@personal ') + 1), ''));
  end loop;
end
$untag$;
drop schema if exists privacy cascade;
