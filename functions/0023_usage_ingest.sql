-- Usage ingest (migrations/0023_usage_ingest.sql): what keeps one row per
-- usage event right without the foreign keys and the key row per event.
{% import 'sql/macros.sql' as m with context %}

-- private.register_usage_keys() -> integer
-- The aggregation job's key step: copies into usage.idempotency_keys the
-- keys of the events that occurred between the register's horizon and the
-- start of the month before the previous one (no event that old is
-- accepted any more: record_usage takes events back to the first day of
-- the previous month), then moves the horizon there. Returns how many keys
-- it copied. Re-runnable (keys already there are skipped); two runs queue
-- on a lock. Until it runs, nothing is wrong: each new event is
-- checked against every partition since the horizon, one index probe
-- each. Refuses: not trusted or platform staff with platform.billing.adjust
-- (42501). Callable by service_role; pg_cron runs it daily where installed.
create or replace function private.register_usage_keys()
  returns integer
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  old_horizon timestamptz;
  new_horizon timestamptz := date_trunc('month', now() at time zone 'UTC') at time zone 'UTC' - interval '2 months';
  copied integer := 0;
begin
  perform private.require_platform('platform.billing.adjust');
  perform pg_advisory_xact_lock(hashtextextended('tenantdb.usage_key_horizon', 0));  -- one run at a time
  old_horizon := coalesce((select h.registered_before from private.usage_key_horizon h), '-infinity');
  if old_horizon >= new_horizon then
    return 0;
  end if;
  insert into usage.idempotency_keys (organization_id, idempotency_key, event_id, occurred_at)
  select e.organization_id, e.idempotency_key, e.id, e.occurred_at
    from usage.events e
   where e.occurred_at >= old_horizon and e.occurred_at < new_horizon
  on conflict on constraint idempotency_keys_pkey do nothing;
  get diagnostics copied = row_count;
  insert into private.usage_key_horizon as h (registered_before) values (new_horizon)
  on conflict (one_row) do update set registered_before = excluded.registered_before, updated_at = now();
  return copied;
end
$fn$;
comment on function private.register_usage_keys is 'Definer twin of register_usage_keys.';
{{ m.private_grants('register_usage_keys', 'service_role') }}
{{ m.api_function('register_usage_keys', '', 'integer', '',
   'The aggregation job''s key step: registers the idempotency keys of events older than the accepted window and moves the register''s horizon; returns how many keys it copied. Needs service_role or platform.billing.adjust (42501).') }}

-- private.organizations_delete_usage_events() -> trigger
-- AFTER DELETE on tenancy.organizations: the organization's usage events
-- go with it (the foreign key's cascade before 0023). It takes the
-- organization's usage lock exclusively first (usage_hold_organization
-- takes it shared), so the usage writes in flight finish and their events
-- are deleted too, and later ones find no organization. Refuses nothing.
create or replace function private.organizations_delete_usage_events()
  returns trigger
  language plpgsql
  {{ m.definer() }}
as $fn$
begin
  perform pg_advisory_xact_lock(hashtextextended('tenantdb.usage:' || old.id::text, 0));
  delete from usage.events e where e.organization_id = old.id;
  return null;
end
$fn$;
comment on function private.organizations_delete_usage_events is 'Trigger: a deleted organization''s usage events are deleted with it.';
{{ m.row_trigger('tenancy.organizations', 'organizations_delete_usage_events', 'after delete', 'private.organizations_delete_usage_events') }}

-- private.meters_keep_key() -> trigger
-- BEFORE UPDATE OF key on catalog.meters: a meter that has counted usage
-- keeps its key (its events name it; every event has its counter), and
-- refuses (55000) the change. Before 0023 the events' foreign key
-- cascaded into the append-only events and was refused there.
create or replace function private.meters_keep_key()
  returns trigger
  language plpgsql
  {{ m.definer() }}
as $fn$
begin
  if new.key is distinct from old.key and exists (select from usage.counters c where c.meter_key = old.key) then
    raise exception 'meter % has recorded usage: its key does not change', old.key
      using errcode = '55000', hint = 'Add the new name as an alias (catalog.meter_aliases).';
  end if;
  return new;
end
$fn$;
comment on function private.meters_keep_key is 'Trigger: a meter with recorded usage keeps its key (55000).';
{{ m.row_trigger('catalog.meters', 'meters_keep_key', 'before update of key', 'private.meters_keep_key') }}

-- pg_cron: where the extension is installed (Supabase; Debian's
-- postgresql-15-cron), the key register is brought forward daily.
do $cron$
begin
  if exists (select from pg_catalog.pg_extension where extname = 'pg_cron') then
    perform cron.schedule('tenantdb-usage-keys', '17 3 * * *', 'select {{ api }}.register_usage_keys()');
  end if;
end
$cron$;
