drop schema if exists privacy cascade;
-- Take the @personal tags off the columns of older changes again.
do $untag$
declare
  r record;
begin
  for r in select n.nspname, c.relname, a.attname, d.description
             from pg_catalog.pg_description d
             join pg_catalog.pg_class c on c.oid = d.objoid and d.classoid = 'pg_catalog.pg_class'::regclass
             join pg_catalog.pg_namespace n on n.oid = c.relnamespace
             join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum = d.objsubid
            where d.objsubid > 0 and d.description like '@personal %' loop
    execute format('comment on column %I.%I.%I is %L', r.nspname, r.relname, r.attname,
                   nullif(substr(r.description, length('@personal ') + 1), ''));
  end loop;
end
$untag$;
