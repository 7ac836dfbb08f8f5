-- 0023 usage ingest: one row written per usage event.
--   * Each monthly partition of usage.events gets a unique index on
--     (organization_id, idempotency_key): a key is claimed by the event
--     itself (ON CONFLICT DO NOTHING), no longer by a row of its own in
--     usage.idempotency_keys. New partitions get theirs from
--     private.ensure_usage_partition.
--   * usage.idempotency_keys becomes the register of the keys of events
--     that occurred before private.usage_key_horizon.registered_before;
--     the keys of later events are found in their partitions (an index
--     probe per partition since the horizon). private.register_usage_keys
--     (the aggregation job) moves the horizon forward. Every key already
--     in the register stays there.
--   * usage.events loses its foreign keys to tenancy.organizations and
--     catalog.meters, checked row by row (a row lock on the organization
--     and on the meter per event, more than the event's own write):
--     record_usage takes the organization's lock once per call, deleting
--     an organization deletes its events (trigger), and a meter with
--     counters keeps its key (trigger; usage.counters keeps its foreign
--     keys, and every event has its counter).
-- tenantdb: destructive (the foreign keys are dropped: no row is)
{% import 'sql/macros.sql' as m with context %}

create table private.usage_key_horizon (
  one_row boolean primary key default true,
  registered_before timestamptz not null,
  updated_at timestamptz not null default now(),
  constraint usage_key_horizon_one_row check (one_row)
);
comment on table private.usage_key_horizon is 'The key register''s horizon: every usage event that occurred before registered_before has its idempotency key in usage.idempotency_keys; later events are found by their partition''s unique key index. Moved forward by private.register_usage_keys; no row: -infinity.';
comment on column private.usage_key_horizon.one_row is 'Always true: the table holds at most one row.';
-- Without a row the horizon is -infinity: every partition is probed (a
-- new database has three). A database that holds events has every key
-- accepted so far in the register, so any horizon is right: two months
-- back, as the job sets it.
insert into private.usage_key_horizon (registered_before)
select date_trunc('month', now() at time zone 'UTC') at time zone 'UTC' - interval '2 months'
 where exists (select from usage.events);
alter table private.usage_key_horizon enable row level security;
alter table private.usage_key_horizon force row level security;
revoke all on private.usage_key_horizon from public, anon, authenticated, service_role;

do $partitions$
declare
  part record;
begin
  for part in
    select c.relname from pg_catalog.pg_inherits i
      join pg_catalog.pg_class c on c.oid = i.inhrelid
     where i.inhparent = 'usage.events'::regclass
  loop
    -- An index built beforehand (create unique index concurrently, same
    -- name) is used; one whose concurrent build failed is invalid and
    -- would enforce nothing: refused.
    if exists (select from pg_catalog.pg_index x where x.indexrelid = to_regclass('usage.' || part.relname || '_key') and not x.indisvalid) then
      raise exception 'usage.%_key is invalid (a failed concurrent build): drop it and build it again', part.relname
        using errcode = '55000';
    end if;
    execute format('create unique index if not exists %I on usage.%I (organization_id, idempotency_key)',
                   part.relname || '_key', part.relname);
  end loop;
end
$partitions$;

alter table usage.events drop constraint events_organization_id_fkey;
alter table usage.events drop constraint events_meter_key_fkey;
comment on column usage.events.idempotency_key is 'The caller''s key for this event; accepted once per organization (the partition''s unique index, and usage.idempotency_keys for events before the register''s horizon).';
comment on table usage.idempotency_keys is 'The register of accepted usage idempotency keys of events older than private.usage_key_horizon (filled by private.register_usage_keys); later keys are held by their partition''s unique index.';
