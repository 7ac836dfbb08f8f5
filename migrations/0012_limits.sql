-- 0012 limits: what one tenant or user can pile up (issue 10).
--   * catalog.limits: the volume caps, as data the service role can change;
--   * catalog.meters.max_per_event: a meter's own bound on one event;
--   * a length bound on every free-text, identifier and jsonb column of
--     the domain schemas that had none (verify keeps it so).
{% import 'sql/macros.sql' as m with context %}

create table catalog.limits (
  key text primary key,
  value bigint not null,
  description text not null,
  updated_at timestamptz not null default now(),
  constraint limits_key_format check (key ~ '^[a-z][a-z0-9_.]*$' and length(key) <= 100),
  constraint limits_value_not_negative check (value >= 0),
  constraint limits_description_length check (length(description) <= 1000)
);
comment on table catalog.limits is 'Caps on what one user or organization may pile up, read by the triggers that enforce them (54000 when exceeded). The service role changes a value with an UPDATE; every signed-in user may read them.';
{{ m.table_grants('catalog.limits', 'select') }}
insert into catalog.limits (key, value, description) values
  ('organizations.per_user_per_day', 10, 'Business organizations one user may create in 24 hours.'),
  ('organizations.per_user', 50, 'Business organizations one user may own in all (personal one not counted).'),
  ('invitations.pending_per_organization', 500, 'Pending (not accepted, revoked or expired) invitations of one organization.'),
  ('consents.per_user_per_day', 100, 'Consent records (given or withdrawn) one user may add in 24 hours.'),
  ('subject_requests.per_user_per_day', 5, 'Data-subject requests one user may submit in 24 hours.');

alter table catalog.meters add column max_per_event bigint;
alter table catalog.meters add constraint meters_max_per_event_positive
  check (max_per_event is null or max_per_event between 1 and 1000000000000);
comment on column catalog.meters.max_per_event is 'The largest quantity one usage event of this meter may carry (null: 10^12, the global bound).';

-- Length bounds. Every text or jsonb column of a domain schema that has no
-- bound yet gets one, named <table>_<column>_length, chosen by what the
-- column holds: an email 254 (RFC 5321), a note or description 10,000
-- characters, a token 4,096, other text 200 (names, keys, identifiers,
-- provider references); jsonb 64 kB (provider payloads 1 MB). Rows that
-- already exceed one make the migration fail here, naming the constraint.
do $bounds$
declare
  col record;
  bound text;
begin
  for col in
    select n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod) as type
      from pg_catalog.pg_attribute a
      join pg_catalog.pg_class c on c.oid = a.attrelid
      join pg_catalog.pg_namespace n on n.oid = c.relnamespace
     where c.relkind in ('r', 'p') and not c.relispartition and a.attnum > 0 and not a.attisdropped
       and n.nspname in ('identity', 'tenancy', 'iam', 'catalog', 'billing', 'usage', 'audit', 'privacy')
       and a.atttypid in ('text'::regtype, 'jsonb'::regtype)
       and not exists (select from pg_catalog.pg_constraint k
                        where k.conrelid = c.oid and k.contype = 'c' and a.attnum = any (k.conkey)
                          and pg_get_constraintdef(k.oid) ~ '(length|pg_column_size)\(')
     order by 1, 2, 3
  loop
    bound := case
      when col.type = 'jsonb' and col.attname = 'payload' then format('pg_column_size(%I) <= 1048576', col.attname)
      when col.type = 'jsonb' then format('pg_column_size(%I) <= 65536', col.attname)
      when col.attname in ('email', 'identifier') then format('length(%I) <= 254', col.attname)
      when col.attname in ('bio', 'description', 'notes', 'note', 'reason', 'revoke_reason', 'error', 'last_error', 'purpose', 'retention', 'category')
        then format('length(%I) <= 10000', col.attname)
      when col.attname in ('access_token', 'refresh_token', 'password_hash', 'scope', 'user_agent', 'avatar_url', 'value_hash')
        then format('length(%I) <= 4096', col.attname)
      else format('length(%I) <= 200', col.attname)
    end;
    execute format('alter table %I.%I add constraint %I check (%s)',
                   col.nspname, col.relname, left(col.relname || '_' || col.attname || '_length', 63), bound);
  end loop;
end
$bounds$;
