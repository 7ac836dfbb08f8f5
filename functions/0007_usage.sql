-- usage: partitions, record_usage, counters, rollups, summaries, overage.
{% import 'sql/macros.sql' as m with context %}

{{ m.append_only('usage.events') }}
{{ m.append_only('usage.idempotency_keys') }}

-- private.ensure_usage_partition(month date) -> text
-- Creates usage.events_yYYYYmMM for the UTC month holding `month` when it
-- is missing (under a lock; a session that loses the race finds it made)
-- and returns its name. Creating a partition locks usage.events until the
-- creating transaction ends, so record_usage makes next month's partition
-- along with this month's: the month boundary itself needs no DDL. The partition gets no client grants and forced RLS:
-- clients reach events only through the parent. No permission check: run
-- by record_usage and at install.
create or replace function private.ensure_usage_partition(month date)
  returns text
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  first_day date := date_trunc('month', month)::date;
  name text := format('events_y%sm%s', to_char(first_day, 'YYYY'), to_char(first_day, 'MM'));
begin
  if to_regclass('usage.' || name) is not null then
    return name;
  end if;
  perform pg_advisory_xact_lock(hashtextextended('tenantdb.usage_partition', 0));
  begin
    execute format('create table usage.%I partition of usage.events for values from (%L) to (%L)',
                   name, first_day::timestamp at time zone 'UTC', (first_day + interval '1 month')::timestamp at time zone 'UTC');
  exception when duplicate_table then
    return name;  -- another session made it first
  end;
  -- Keys are accepted once per organization: each partition holds its
  -- unique index (a partitioned table's unique index must contain
  -- occurred_at), which record_usage's ON CONFLICT DO NOTHING arbitrates on.
  -- From 0023 on: the partitions made at install, before it, get theirs
  -- from 0023, so that a database rolled back below it has none, as one
  -- never migrated past it.
  if to_regclass('private.usage_key_horizon') is not null then
    execute format('create unique index %I on usage.%I (organization_id, idempotency_key)', name || '_key', name);
  end if;
  execute format('revoke all on usage.%I from public, anon, authenticated', name);
  execute format('alter table usage.%I enable row level security', name);
  execute format('alter table usage.%I force row level security', name);
  execute format('comment on table usage.%I is %L', name, 'Usage events of ' || to_char(first_day, 'YYYY-MM') || ' (UTC); read through usage.events.');
  return name;
end
$fn$;
comment on function private.ensure_usage_partition is 'Creates the monthly partition of usage.events holding a date, once.';
revoke all on function private.ensure_usage_partition from public, anon, authenticated;

select private.ensure_usage_partition((current_date - interval '1 month')::date);
select private.ensure_usage_partition(current_date);
select private.ensure_usage_partition((current_date + interval '1 month')::date);

-- private.usage_hold_organization(org_id uuid) -> void
-- What the foreign keys of usage.events to tenancy.organizations did, once
-- per call instead of once per event: takes a shared transaction lock on
-- the organization's usage (an advisory lock: no row write, unlike the
-- row lock FOR KEY SHARE a foreign key takes, which several writers turn
-- into a multixact), then checks that the organization exists. Deleting an
-- organization takes the same lock exclusively (functions/0023), so it
-- waits for the writes in flight and deletes their events too, and a
-- write after it finds no organization. Refuses: an organization that
-- does not exist (23503). Internal: the usage writers.
create or replace function private.usage_hold_organization(org_id uuid)
  returns void
  language plpgsql
  {{ m.definer() }}
as $fn$
begin
  perform pg_advisory_xact_lock_shared(hashtextextended('tenantdb.usage:' || org_id::text, 0));
  if not exists (select from tenancy.organizations o where o.id = org_id) then
    raise exception 'usage: organization % does not exist', org_id using errcode = '23503';
  end if;
end
$fn$;
comment on function private.usage_hold_organization is 'Internal: a usage write''s shared lock on its organization, and its existence (23503).';
revoke all on function private.usage_hold_organization from public, anon, authenticated;

-- private.usage_keys_registered_before() -> timestamptz
-- The horizon of the key register (migrations/0023_usage_ingest.sql): the
-- key of every usage event that occurred before it is in
-- usage.idempotency_keys; later events' keys are found in their monthly
-- partitions, each of which holds a unique index on (organization_id,
-- idempotency_key); -infinity until the first register_usage_keys (every
-- partition is probed). Null on a database without 0023, where every key
-- is claimed in the register first. Internal.
create or replace function private.usage_keys_registered_before()
  returns timestamptz
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
begin
  if to_regclass('private.usage_key_horizon') is null then
    return null;
  end if;
  return coalesce((select h.registered_before from private.usage_key_horizon h), '-infinity');
end
$fn$;
comment on function private.usage_keys_registered_before is 'Internal: events before this moment have their keys in usage.idempotency_keys; later ones in their partition''s unique index.';
revoke all on function private.usage_keys_registered_before from public, anon, authenticated;

-- private.usage_key_event(org_id uuid, idempotency_key text, skip_month timestamptz default null) -> uuid
-- The event an accepted idempotency key stands for (null: not accepted),
-- read with a fresh snapshot (VOLATILE): in the partitions since the
-- register's horizon, then in the register. skip_month leaves out the
-- partition of the UTC month holding it (record_usage's own partition,
-- whose unique index answers for it at the insert). One index probe per
-- partition left: the plan is generic (partitions pruned at execution),
-- since a custom plan is made again, for every partition, at every call.
-- Internal.
drop function if exists private.usage_key_event(uuid, text);  -- the release before's, without skip_month
create or replace function private.usage_key_event(org_id uuid, idempotency_key text, skip_month timestamptz default null)
  returns uuid
  language plpgsql
  volatile
  set plan_cache_mode = force_generic_plan
  {{ m.definer() }}
as $fn$
declare
  horizon timestamptz := private.usage_keys_registered_before();
  skip_from timestamptz := date_trunc('month', skip_month at time zone 'UTC') at time zone 'UTC';
  found_id uuid;
begin
  if horizon is not null then
    select e.id into found_id from usage.events e
     where e.organization_id = usage_key_event.org_id and e.idempotency_key = usage_key_event.idempotency_key
       and e.occurred_at >= horizon
       and (skip_from is null or e.occurred_at < skip_from or e.occurred_at >= skip_from + interval '1 month')
     limit 1;
    if found_id is not null then
      return found_id;
    end if;
  end if;
  return (select k.event_id from usage.idempotency_keys k
           where k.organization_id = usage_key_event.org_id and k.idempotency_key = usage_key_event.idempotency_key);
end
$fn$;
comment on function private.usage_key_event is 'Internal: the event id of an accepted usage idempotency key, read afresh (optionally outside one month''s partition).';
revoke all on function private.usage_key_event from public, anon, authenticated;

-- private.usage_append(org_id uuid, meter_key text, quantity bigint, idempotency_key text,
--   at timestamptz, metadata jsonb) -> table (event_id uuid, duplicate boolean)
-- Writes one usage event under its idempotency key: a key accepted before
-- returns the first event with duplicate = true and writes nothing. Within
-- the month of occurred_at the partition's unique index decides, also
-- between concurrent calls (ON CONFLICT DO NOTHING); a key accepted in
-- another month, or before the register's horizon, is found first by
-- usage_key_event. Not exact only for two first uses of a key at once with
-- occurred_at in two months (each misses the other's uncommitted event).
-- One row is written: the event (on a database rolled back below 0023,
-- the key's register row first, as the release before did). Holds the
-- organization (usage_hold_organization) and creates the month's
-- partition when missing. Refuses: an organization that does not exist
-- (23503). No permission check and no counter: its callers (record_usage,
-- gate_and_meter) validate and count. Internal.
create or replace function private.usage_append(org_id uuid, meter_key text, quantity bigint, idempotency_key text,
                                                at timestamptz, metadata jsonb)
  returns table (event_id uuid, duplicate boolean)
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  new_id uuid := gen_random_uuid();
  earlier uuid;
begin
  perform private.usage_hold_organization(org_id);
  if private.usage_keys_registered_before() is null then
    -- Below 0023: the key is claimed in the register first.
    insert into usage.idempotency_keys as k (organization_id, idempotency_key, event_id, occurred_at)
    values (org_id, usage_append.idempotency_key, new_id, at)
    on conflict on constraint idempotency_keys_pkey do nothing;
    earlier := case when not found then private.usage_key_event(org_id, usage_append.idempotency_key) end;
  else
    earlier := private.usage_key_event(org_id, usage_append.idempotency_key, at);
  end if;
  if earlier is not null then
    return query select earlier, true;
    return;
  end if;
  if to_regclass(format('usage.events_y%s', to_char(at at time zone 'UTC', 'YYYY"m"MM'))) is null then
    perform private.ensure_usage_partition((at at time zone 'UTC')::date);
    perform private.ensure_usage_partition(((at at time zone 'UTC') + interval '1 month')::date);
  end if;
  insert into usage.events (organization_id, id, meter_key, quantity, idempotency_key, occurred_at, user_id, metadata)
  values (org_id, new_id, usage_append.meter_key, quantity, usage_append.idempotency_key, at, auth.uid(), coalesce(metadata, '{}'))
  on conflict do nothing;
  if found then
    return query select new_id, false;
  else  -- a concurrent transaction accepted the key in this month first
    return query select private.usage_key_event(org_id, usage_append.idempotency_key), true;
  end if;
end
$fn$;
comment on function private.usage_append is 'Internal: one usage event under its idempotency key (no checks, no counter).';
{{ m.private_grants('usage_append', 'service_role') }}

-- private.meter_for(key text) -> text
-- The meter a key names: a meter key itself, a meter alias
-- (catalog.meter_aliases, from 0015 on: without it there are no aliases),
-- or a feature key whose feature names a meter; null for anything else
-- (the caller raises its own error). Internal.
create or replace function private.meter_for(key text)
  returns text
  language plpgsql
  stable
  {{ m.pinned() }}
as $fn$
declare
  found text;
begin
  select mt.key into found from catalog.meters mt where mt.key = meter_for.key;
  if found is null and to_regclass('catalog.meter_aliases') is not null then
    select a.meter_key into found from catalog.meter_aliases a where a.alias = meter_for.key;
  end if;
  if found is null then
    select f.meter_key into found from catalog.features f where f.key = meter_for.key;
  end if;
  return found;
end
$fn$;
comment on function private.meter_for is 'The meter a key names: a meter key, a meter alias or a feature key (its meter); null when none.';
{{ m.private_grants('meter_for', 'service_role') }}

-- private.usage_tally(org_id uuid, meter_key text, quantity bigint, at timestamptz, metadata jsonb,
--   event_id uuid, period date) -> void
-- Counts one written event of a meter that is neither a plain sum nor a
-- count (record_usage and record_usage_batch count those inline), in the
-- caller's transaction:
--   unique_count: the value of the meter's field_name in metadata (for
--     user_id, the signed-in user when metadata has none) is inserted into
--     usage.unique_values for the period; only a new value counts one;
--   max: the period's counter (slot 0) keeps the highest quantity;
--   latest: the period's counter (slot 0) takes the quantity unless it
--     holds a later one (by occurred_at; a tie goes to the later arrival);
--   recurring sum: the running total (usage.live_counts) moves by the
--     quantity and the period's counter (slot 0) keeps its highest total.
-- Refuses (22023) a unique_count event without a value, and a recurring
-- sum taken below zero. Internal: its callers validate the event first.
create or replace function private.usage_tally(org_id uuid, meter_key text, quantity bigint, at timestamptz, metadata jsonb,
                                               event_id uuid, period date)
  returns void
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  mt catalog.meters;
  val text;
  added integer := 0;
  total bigint;
begin
  select * into mt from catalog.meters c where c.key = usage_tally.meter_key;
  if mt.aggregation = 'unique_count' then
    val := coalesce(metadata ->> mt.field_name, case when mt.field_name = 'user_id' then auth.uid()::text end);
    if coalesce(val, '') = '' then
      raise exception 'record_usage: meter % counts distinct metadata.%, and the event has none', meter_key, mt.field_name
        using errcode = '22023', hint = format('Pass p_metadata => {"%s": ...}.', mt.field_name);
    end if;
    insert into usage.unique_values (organization_id, meter_key, period_start, value, first_event_id)
    values (org_id, usage_tally.meter_key, period, val, event_id)
    on conflict on constraint unique_values_pkey do nothing;
    get diagnostics added = row_count;
    insert into usage.counters as c (organization_id, meter_key, period_start, slot, quantity, event_count)
    values (org_id, usage_tally.meter_key, period, pg_backend_pid() % 16, added, 1)
    on conflict on constraint counters_pkey
    do update set quantity = c.quantity + excluded.quantity, event_count = c.event_count + 1, updated_at = now();
  elsif mt.aggregation = 'max' then
    insert into usage.counters as c (organization_id, meter_key, period_start, slot, quantity, event_count)
    values (org_id, usage_tally.meter_key, period, 0, quantity, 1)
    on conflict on constraint counters_pkey
    do update set quantity = greatest(c.quantity, excluded.quantity), event_count = c.event_count + 1, updated_at = now();
  elsif mt.aggregation = 'latest' then
    insert into usage.counters as c (organization_id, meter_key, period_start, slot, quantity, event_count, last_at)
    values (org_id, usage_tally.meter_key, period, 0, quantity, 1, at)
    on conflict on constraint counters_pkey
    do update set quantity = case when excluded.last_at >= coalesce(c.last_at, '-infinity') then excluded.quantity else c.quantity end,
                  last_at = greatest(c.last_at, excluded.last_at), event_count = c.event_count + 1, updated_at = now();
  elsif mt.recurring then
    if quantity < 0 then
      update usage.live_counts l set quantity = l.quantity + usage_tally.quantity, updated_at = now()
       where l.organization_id = org_id and l.meter_key = usage_tally.meter_key and l.quantity + usage_tally.quantity >= 0
      returning l.quantity into total;
      if not found then
        raise exception 'record_usage: meter % would go below zero: organization % has %, the event takes %', meter_key, org_id,
          coalesce((select l.quantity from usage.live_counts l where l.organization_id = org_id and l.meter_key = usage_tally.meter_key), 0),
          -quantity
          using errcode = '22023', hint = 'A negative quantity gives back units recorded before; give back at most what is left.';
      end if;
    else
      insert into usage.live_counts as l (organization_id, meter_key, quantity)
      values (org_id, usage_tally.meter_key, quantity)
      on conflict on constraint live_counts_pkey
      do update set quantity = l.quantity + excluded.quantity, updated_at = now()
      returning l.quantity into total;
    end if;
    insert into usage.counters as c (organization_id, meter_key, period_start, slot, quantity, event_count)
    values (org_id, usage_tally.meter_key, period, 0, total, 1)
    on conflict on constraint counters_pkey
    do update set quantity = greatest(c.quantity, excluded.quantity), event_count = c.event_count + 1, updated_at = now();
  else
    raise exception 'usage_tally: meter % (%) is counted by its caller', meter_key, mt.aggregation using errcode = '22023';
  end if;
end
$fn$;
comment on function private.usage_tally is 'Internal: counts one event of a unique_count, max, latest or recurring sum meter (the plain sum and count are counted inline).';
revoke all on function private.usage_tally from public, anon, authenticated;

-- private.meter_usage(org_id uuid, meter_key text, period_start date, live boolean) -> bigint
-- A meter's usage by an organization in the billing period starting on
-- period_start, as its aggregation means it: sum, count, unique_count,
-- max: the period's counters added up; latest: the last value reported up
-- to that period (carried over from an earlier period without a report);
-- live_count and recurring sum: with live, the total now (the gate);
-- otherwise the period's highest total, or the total now when it did not
-- change in the period (what a summary bills). 0 when nothing was
-- recorded. Internal: check_feature_access and summarize_period.
create or replace function private.meter_usage(org_id uuid, meter_key text, period_start date, live boolean)
  returns bigint
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
declare
  mt catalog.meters;
begin
  select * into mt from catalog.meters c where c.key = meter_usage.meter_key;
  if mt.aggregation = 'live_count' or mt.recurring then
    return coalesce(
      case when not live then
        (select max(c.quantity) from usage.counters c
          where c.organization_id = org_id and c.meter_key = meter_usage.meter_key and c.period_start = meter_usage.period_start) end,
      (select l.quantity from usage.live_counts l where l.organization_id = org_id and l.meter_key = meter_usage.meter_key), 0);
  elsif mt.aggregation = 'latest' then
    return coalesce((select c.quantity from usage.counters c
                      where c.organization_id = org_id and c.meter_key = meter_usage.meter_key
                        and c.period_start <= meter_usage.period_start
                      order by c.period_start desc, c.slot limit 1), 0);
  end if;
  return coalesce((select sum(c.quantity) from usage.counters c
                    where c.organization_id = org_id and c.meter_key = meter_usage.meter_key
                      and c.period_start = meter_usage.period_start), 0);
end
$fn$;
comment on function private.meter_usage is 'Internal: a meter''s usage in a billing period as its aggregation means it (live: the stock now).';
revoke all on function private.meter_usage from public, anon, authenticated;

-- private.record_usage(org_id uuid, meter text, quantity bigint, idempotency_key text,
--   occurred_at timestamptz, metadata jsonb) -> table (event_id uuid, duplicate boolean)
-- Records one usage event and adds it to the live counter of its billing
-- period, in the caller's transaction, as the meter's aggregation says
-- (a plain sum or count inline; the others through private.usage_tally).
-- A key the organization used before (ever; also concurrently, except two
-- first uses at once with occurred_at in different months: usage_append)
-- returns the first event with duplicate = true and writes nothing. The
-- event is the one row written besides the counter. meter names a
-- meter: its key, one of its aliases, or the key of a feature that names
-- it (private.meter_for); the event is stored under the meter's key. A
-- live_count meter (projects) is fed by its table's trigger only.
-- Refuses: not a member with usage.record (guests and suspended
-- organizations lack it) and not trusted (42501); unknown or live_count
-- meter, a quantity outside 1..10^12 (max, latest: 0..10^12; recurring
-- sum: -10^12..10^12 but not 0, never taking the total below zero), a
-- unique_count event without its field (unless its key was accepted
-- before, by an event counted without one: a replay), blank key,
-- non-object metadata (22023); occurred_at before the first day of the previous UTC month or
-- more than one hour ahead (22023).
create or replace function private.record_usage(org_id uuid, meter text, quantity bigint, idempotency_key text,
                                                occurred_at timestamptz, metadata jsonb)
  returns table (event_id uuid, duplicate boolean)
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  at timestamptz := coalesce(occurred_at, now());
  earliest timestamptz := date_trunc('month', now() at time zone 'UTC') at time zone 'UTC' - interval '1 month';
  period date;
  resolved text := private.meter_for(meter);
  meter_bound bigint;
  meter_aggregation text;
  meter_recurring boolean;
  meter_field text;
  written record;
  replayed uuid;
begin
  if not (private.has_permission(org_id, 'usage.record') or private.is_trusted_caller()) then
    raise exception 'record_usage: permission usage.record is required in organization %', org_id using errcode = '42501';
  end if;
  if quantity is null or quantity < -1000000000000 or quantity > 1000000000000 then
    raise exception 'record_usage: quantity must be between 1 and 10^12, got %', quantity using errcode = '22023';
  end if;
  if coalesce(btrim(idempotency_key), '') = '' then
    raise exception 'record_usage: an idempotency key is required' using errcode = '22023';
  end if;
  if jsonb_typeof(coalesce(metadata, '{}')) <> 'object' then
    raise exception 'record_usage: metadata must be a JSON object' using errcode = '22023';
  end if;
  select mt.max_per_event, mt.aggregation, mt.recurring, mt.field_name
    into meter_bound, meter_aggregation, meter_recurring, meter_field
    from catalog.meters mt where mt.key = resolved;
  if not found then
    raise exception 'record_usage: unknown meter "%": not a meter key, a meter alias or a feature with a meter', meter
      using errcode = '22023',
            hint = 'Meters are the keys of catalog.meters (api_call, record_created, ...), their aliases are in catalog.meter_aliases, and a feature names its meter in catalog.features.meter_key.';
  end if;
  if meter_aggregation = 'live_count' then
    raise exception 'record_usage: meter % counts live rows; it is recorded by its table, not by record_usage', resolved
      using errcode = '22023', hint = 'Insert into the metered table (e.g. app.projects).';
  end if;
  if meter_recurring then
    if quantity = 0 then
      raise exception 'record_usage: meter % is a running total: quantity must not be 0', resolved using errcode = '22023',
        hint = 'A positive quantity adds units, a negative one gives them back.';
    end if;
  elsif meter_aggregation in ('max', 'latest') then
    if quantity < 0 then
      raise exception 'record_usage: meter % reports a value: quantity must be between 0 and 10^12, got %', resolved, quantity
        using errcode = '22023';
    end if;
  elsif quantity <= 0 then
    raise exception 'record_usage: quantity must be between 1 and 10^12, got %', quantity using errcode = '22023',
      hint = format('Meter %s (%s) takes positive quantities; only a recurring sum gives units back.', resolved, meter_aggregation);
  end if;
  if meter_aggregation = 'unique_count'
     and coalesce(metadata ->> meter_field, case when meter_field = 'user_id' then auth.uid()::text end, '') = '' then
    -- An event accepted without a value (a count, before unique_count) is
    -- still replayed by its key.
    replayed := private.usage_key_event(org_id, idempotency_key);
    if replayed is not null then
      return query select replayed, true;
      return;
    end if;
    raise exception 'record_usage: meter % counts distinct metadata.%, and the event has none', resolved, meter_field
      using errcode = '22023', hint = format('Pass p_metadata => {"%s": ...}.', meter_field);
  end if;
  if abs(quantity) > meter_bound then
    raise exception 'record_usage: meter % takes at most % per event, got %', resolved, meter_bound, quantity
      using errcode = '22023', hint = 'catalog.meters.max_per_event';
  end if;
  -- A reading that can lower what the organization is billed (a gauge's
  -- value, units given back) is the back end's to report, never a member's.
  if (meter_aggregation in ('max', 'latest') or quantity < 0) and not private.is_trusted_caller() then
    raise exception 'record_usage: meter % takes gauge readings and give-backs from the back end only', resolved
      using errcode = '42501', hint = 'Report it with the service role (a member could lower the usage billed).';
  end if;
  if at < earliest or at > now() + interval '1 hour' then
    raise exception 'record_usage: occurred_at % is outside the accepted window [%, now + 1 hour]', at, earliest
      using errcode = '22023', hint = 'Late events are accepted back to the first day of the previous UTC month.';
  end if;

  select * into written from private.usage_append(org_id, resolved, quantity, idempotency_key, at, metadata);
  if written.duplicate then
    return query select written.event_id, true;
    return;
  end if;

  if exists (select from billing.settings s where s.organization_id = org_id) then
    select p.start_date into period from private.billing_period(org_id, at) p;
  else
    period := date_trunc('month', at at time zone 'UTC')::date;  -- the default calendar, without the call
  end if;
  if meter_recurring or meter_aggregation not in ('sum', 'count') then
    perform private.usage_tally(org_id, resolved, quantity, at, metadata, written.event_id, period);
    return query select written.event_id, false;
    return;
  end if;
  -- A plain sum or count. One slot per session (pid mod 16): concurrent
  -- writers of one organization update different rows instead of queueing on one.
  insert into usage.counters as c (organization_id, meter_key, period_start, slot, quantity, event_count)
  values (org_id, resolved, period, pg_backend_pid() % 16, case when meter_aggregation = 'count' then 1 else quantity end, 1)
  on conflict on constraint counters_pkey
  do update set quantity = c.quantity + excluded.quantity, event_count = c.event_count + 1, updated_at = now();
  return query select written.event_id, false;
end
$fn$;
comment on function private.record_usage is 'Definer twin of record_usage.';
{{ m.private_grants('record_usage') }}
{{ m.api_function('record_usage',
   "p_organization_id uuid, p_meter_key text, p_quantity bigint, p_idempotency_key text, p_occurred_at timestamptz default now(), p_metadata jsonb default '{}'",
   'table (event_id uuid, duplicate boolean)', 'p_organization_id, p_meter_key, p_quantity, p_idempotency_key, p_occurred_at, p_metadata',
   'Records a usage event once per (organization, idempotency key) and counts it at commit; returns its id and whether it was a replay. p_meter_key: a meter key, one of its aliases, or a feature key (its meter). Needs usage.record (42501); unknown meter, bad quantity, key or time: 22023.', cached=true) }}


-- private.record_usage_batch(org_id uuid, events jsonb)
--   -> table (item integer, idempotency_key text, event_id uuid, duplicate boolean)
-- record_usage for many events in one call: events is a JSON array of
-- objects with record_usage's arguments as keys (meter_key, or feature_key
-- as before: either holds a meter key, alias or feature key; quantity,
-- idempotency_key, and optionally occurred_at and metadata). Returns one
-- row per item, in order (item is its 1-based position): its event id and
-- whether it was a replay (a key accepted before, or earlier in the same
-- array). All or nothing: an invalid item refuses the whole call (22023,
-- naming the item) and writes nothing; duplicates are not errors. The same
-- rules as record_usage: needs usage.record (42501); at most 10,000 items.
-- Set-based: one statement claims the keys, writes the events and adds
-- them to the counters. Callable by authenticated and service_role.
create or replace function private.record_usage_batch(org_id uuid, events jsonb)
  returns table (item integer, idempotency_key text, event_id uuid, duplicate boolean)
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  earliest timestamptz := date_trunc('month', now() at time zone 'UTC') at time zone 'UTC' - interval '1 month';
  bad record;
  month date;
  calendar boolean;
  meters jsonb;  -- each name the items use -> its meter key (resolved once per name, not per item)
  counting text[];  -- the batch's count meters (an event counts one)
  tallied text[];   -- the batch's meters counted by usage_tally (unique_count, max, latest, recurring sum)
  horizon timestamptz := private.usage_keys_registered_before();
  trusted boolean := private.is_trusted_caller();
begin
  if not (private.has_permission(org_id, 'usage.record') or private.is_trusted_caller()) then
    raise exception 'record_usage_batch: permission usage.record is required in organization %', org_id using errcode = '42501';
  end if;
  if events is null or jsonb_typeof(events) <> 'array' then
    raise exception 'record_usage_batch: events must be a JSON array of objects' using errcode = '22023';
  end if;
  if jsonb_array_length(events) > 10000 then
    raise exception 'record_usage_batch: at most 10000 events per call, got %', jsonb_array_length(events)
      using errcode = '22023', hint = 'Split the batch.';
  end if;

  select coalesce(jsonb_object_agg(n.name, private.meter_for(n.name)) filter (where n.name is not null), '{}') into meters
    from (select distinct coalesce(e.v ->> 'meter_key', e.v ->> 'feature_key') as name
            from jsonb_array_elements(events) as e (v) where jsonb_typeof(e.v) = 'object') n;

  -- The first invalid item, if any (occurred_at is checked by its cast below).
  select e.i, problem into bad
    from jsonb_array_elements(events) with ordinality as e (v, i)
    left join catalog.meters mt on mt.key = meters ->> coalesce(e.v ->> 'meter_key', e.v ->> 'feature_key')
   cross join lateral (select case
            when jsonb_typeof(e.v) <> 'object' then 'is not a JSON object'
            when jsonb_typeof(e.v -> 'quantity') is distinct from 'number' or (e.v ->> 'quantity') !~ '^-?[0-9]{1,13}$'
              then 'quantity must be a whole number between 1 and 10^12'
            when coalesce(btrim(e.v ->> 'idempotency_key'), '') = '' then 'has no idempotency_key'
            when jsonb_typeof(coalesce(e.v -> 'metadata', '{}')) <> 'object' then 'metadata must be a JSON object'
            when mt.key is null then format('unknown meter "%s"', coalesce(e.v ->> 'meter_key', e.v ->> 'feature_key'))
            when mt.aggregation = 'live_count' then format('meter %s counts live rows; it is recorded by its table', mt.key)
            when abs((e.v ->> 'quantity')::bigint) > 1000000000000
              then 'quantity must be a whole number between 1 and 10^12'
            when mt.recurring and (e.v ->> 'quantity')::bigint = 0
              then format('meter %s is a running total: quantity must not be 0', mt.key)
            when not mt.recurring and mt.aggregation in ('max', 'latest') and (e.v ->> 'quantity')::bigint < 0
              then format('meter %s reports a value: quantity must be between 0 and 10^12', mt.key)
            when not mt.recurring and mt.aggregation not in ('max', 'latest') and (e.v ->> 'quantity')::bigint < 1
              then 'quantity must be a whole number between 1 and 10^12'
            when mt.aggregation = 'unique_count'
                 and coalesce(e.v -> 'metadata' ->> mt.field_name, case when mt.field_name = 'user_id' then auth.uid()::text end, '') = ''
                 and private.usage_key_event(org_id, e.v ->> 'idempotency_key') is null  -- a replay of an event accepted without one passes
              then format('meter %s counts distinct metadata.%s, and the item has none', mt.key, mt.field_name)
            when abs((e.v ->> 'quantity')::bigint) > mt.max_per_event
              then format('meter %s takes at most %s per event', mt.key, mt.max_per_event)
            when not trusted and (mt.aggregation in ('max', 'latest') or (e.v ->> 'quantity')::bigint < 0)
              then format('meter %s takes gauge readings and give-backs from the back end only', mt.key)
          end as problem) as c
   where c.problem is not null
   order by e.i
   limit 1;
  if found then
    raise exception 'record_usage_batch: item % %', bad.i, bad.problem
      using errcode = case when bad.problem like '% from the back end only' then '42501' else '22023' end,
            hint = 'Nothing was recorded; correct the item and send the batch again.';
  end if;
  begin
    select e.i into bad
      from jsonb_array_elements(events) with ordinality as e (v, i)
     where coalesce((e.v ->> 'occurred_at')::timestamptz, now()) not between earliest and now() + interval '1 hour'
     order by e.i
     limit 1;
  exception when invalid_datetime_format or datetime_field_overflow then
    raise exception 'record_usage_batch: an occurred_at is not a timestamp' using errcode = '22023';
  end;
  if found then
    raise exception 'record_usage_batch: item % occurred_at is outside the accepted window [%, now + 1 hour]', bad.i, earliest
      using errcode = '22023', hint = 'Nothing was recorded. Late events are accepted back to the first day of the previous UTC month.';
  end if;

  for month in
    select distinct date_trunc('month', coalesce((e.v ->> 'occurred_at')::timestamptz, now()) at time zone 'UTC')::date
      from jsonb_array_elements(events) as e (v)
  loop
    if to_regclass(format('usage.events_y%s', to_char(month, 'YYYY"m"MM'))) is null then
      perform private.ensure_usage_partition(month);
      perform private.ensure_usage_partition((month + interval '1 month')::date);
    end if;
  end loop;
  perform private.usage_hold_organization(org_id);
  calendar := exists (select from billing.settings s where s.organization_id = org_id);
  select coalesce(array_agg(mt.key) filter (where mt.aggregation = 'count'), '{}'),
         coalesce(array_agg(mt.key) filter (where mt.recurring or mt.aggregation not in ('sum', 'count')), '{}')
    into counting, tallied
    from catalog.meters mt where mt.key in (select jsonb_each_text.value from jsonb_each_text(meters));

  return query
  with items as (
    select e.i::integer as i, e.v ->> 'idempotency_key' as key, meters ->> coalesce(e.v ->> 'meter_key', e.v ->> 'feature_key') as meter,
           (e.v ->> 'quantity')::bigint as quantity, coalesce((e.v ->> 'occurred_at')::timestamptz, now()) as at,
           coalesce(e.v -> 'metadata', '{}') as metadata
      from jsonb_array_elements(events) with ordinality as e (v, i)
  ), firsts as (
    -- the first item of each key, with the id its event will have and the
    -- UTC month of its partition (whose unique index answers for the key)
    select distinct on (it.key) it.*, gen_random_uuid() as id,
           date_trunc('month', it.at at time zone 'UTC') at time zone 'UTC' as month
      from items it
     order by it.key, it.i
  ), keys as (
    -- Before 0023 only (horizon null): keys are claimed in the register
    -- first, in key order (two batches sharing keys wait on each other in
    -- one direction only, never in a cycle).
    insert into usage.idempotency_keys as k (organization_id, idempotency_key, event_id, occurred_at)
    select org_id, f.key, f.id, f.at from firsts f where horizon is null order by f.key
    on conflict on constraint idempotency_keys_pkey do nothing
    returning k.idempotency_key
  ), written as (
    -- One row per new event. A key accepted before is skipped: found in the
    -- register or in another partition since its horizon (index probes),
    -- or in its own partition (accepted before, or by a concurrent batch:
    -- ON CONFLICT DO NOTHING waits for it) by the partition's unique index.
    -- Inserted in key order, for the same reason as above.
    insert into usage.events as ev (organization_id, id, meter_key, quantity, idempotency_key, occurred_at, user_id, metadata)
    select org_id, f.id, f.meter, f.quantity, f.key, f.at, auth.uid(), f.metadata
      from firsts f
     where case when horizon is null then exists (select from keys k where k.idempotency_key = f.key)
                else not exists (select from usage.idempotency_keys r where r.organization_id = org_id and r.idempotency_key = f.key)
                     and not exists (select from usage.events e
                                      where e.organization_id = org_id and e.idempotency_key = f.key and e.occurred_at >= horizon
                                        and (e.occurred_at < f.month or e.occurred_at >= f.month + interval '1 month')) end
     order by f.key
    on conflict do nothing
    returning ev.id, ev.idempotency_key, ev.meter_key, ev.quantity, ev.occurred_at, ev.metadata
  ), counted as (
    -- plain sums and counts, set-based (the other aggregations: tally)
    insert into usage.counters as c (organization_id, meter_key, period_start, slot, quantity, event_count)
    select org_id, w.meter_key, w.period, pg_backend_pid() % 16,
           case when w.meter_key = any(counting) then count(*) else sum(w.quantity) end, count(*)
      from (select wr.meter_key, wr.quantity,
                   case when calendar then (select p.start_date from private.billing_period(org_id, wr.occurred_at) p)
                        else date_trunc('month', wr.occurred_at at time zone 'UTC')::date end as period
              from written wr) w
     where w.meter_key <> all(tallied)
     group by w.meter_key, w.period
    on conflict on constraint counters_pkey
    do update set quantity = c.quantity + excluded.quantity, event_count = c.event_count + excluded.event_count, updated_at = now()
  ), tally as (
    -- one call per event of a unique_count, max, latest or recurring sum
    -- meter, in item order (none when the batch has no such meter)
    select count(private.usage_tally(org_id, t.meter_key, t.quantity, t.occurred_at, t.metadata, t.id, t.period)) as n
      from (select wr.id, wr.meter_key, wr.quantity, wr.occurred_at, wr.metadata,
                   case when calendar then (select p.start_date from private.billing_period(org_id, wr.occurred_at) p)
                        else date_trunc('month', wr.occurred_at at time zone 'UTC')::date end as period
              from written wr join firsts f on f.id = wr.id join catalog.meters mt on mt.key = wr.meter_key
             where cardinality(tallied) > 0 and wr.meter_key = any(tallied)
             -- the rows each call locks (a counter, a live count, a value seen),
             -- in one order for every batch: no two batches wait on each
             -- other in a cycle; items in their order within a value (a
             -- running total's give-backs are checked in item order)
             order by wr.meter_key, coalesce(wr.metadata ->> mt.field_name, case when mt.field_name = 'user_id' then auth.uid()::text end),
                      f.i) t
  )
  -- A key not written here was accepted before (or by a concurrent batch
  -- that committed while this one waited on it): usage_key_event reads
  -- its event id afresh.
  select it.i, it.key, coalesce(w.id, private.usage_key_event(org_id, it.key)), w.id is null or it.i <> f.i
    from items it
    join firsts f on f.key = it.key
    left join written w on w.idempotency_key = it.key
   cross join tally
   order by it.i;
end
$fn$;
comment on function private.record_usage_batch is 'Definer twin of record_usage_batch.';
{{ m.private_grants('record_usage_batch') }}
{{ m.api_function('record_usage_batch', 'p_organization_id uuid, p_events jsonb',
   'table (item integer, idempotency_key text, event_id uuid, duplicate boolean)', 'p_organization_id, p_events',
   'Records many usage events at once, all or nothing: events is a JSON array of {meter_key (or feature_key), quantity, idempotency_key, occurred_at?, metadata?}; returns each item\'s event id and whether it was a replay. Needs usage.record (42501); an invalid item or more than 10000 items: 22023, nothing written.', cached=true) }}

-- private.aggregate_usage(period_type text, start_at timestamptz, end_at timestamptz) -> integer
-- Seed 001: recomputes the daily or monthly (UTC) rollups of every bucket
-- that starts in [start_at, end_at) from the events, and returns how many
-- rollup rows it wrote. Values are set, not added: re-running a range gives
-- the same rows. Refuses: not trusted (42501); a period type other than
-- daily or monthly, or an empty range (22023). Callable by service_role.
create or replace function private.aggregate_usage(period_type text, start_at timestamptz, end_at timestamptz)
  returns integer
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  unit text;
  first_bucket timestamptz;
  written int;
begin
  perform private.require_platform('platform.billing.adjust');
  unit := case period_type when 'daily' then 'day' when 'monthly' then 'month' end;
  if unit is null then
    raise exception 'aggregate_usage: period_type must be daily or monthly, got %', period_type using errcode = '22023';
  end if;
  if start_at is null or end_at is null or end_at <= start_at then
    raise exception 'aggregate_usage: the range [%, %) is empty', start_at, end_at using errcode = '22023';
  end if;
  first_bucket := date_trunc(unit, start_at at time zone 'UTC') at time zone 'UTC';
  if first_bucket < start_at then
    first_bucket := first_bucket + ('1 ' || unit)::interval;
  end if;
  insert into usage.rollups as r (organization_id, meter_key, period_type, period_start, quantity, event_count)
  select e.organization_id, e.meter_key, aggregate_usage.period_type,
         date_trunc(unit, e.occurred_at at time zone 'UTC')::date, sum(e.quantity), count(*)
    from usage.events e
   where e.occurred_at >= first_bucket
     and e.occurred_at < date_trunc(unit, (end_at - interval '1 microsecond') at time zone 'UTC') at time zone 'UTC' + ('1 ' || unit)::interval
     and date_trunc(unit, e.occurred_at at time zone 'UTC') at time zone 'UTC' < end_at
   group by 1, 2, 3, 4
  on conflict on constraint rollups_pkey
  do update set quantity = excluded.quantity, event_count = excluded.event_count, updated_at = now()
    where (r.quantity, r.event_count) is distinct from (excluded.quantity, excluded.event_count);
  get diagnostics written = row_count;
  return written;
end
$fn$;
comment on function private.aggregate_usage is 'Definer twin of aggregate_usage.';
{{ m.private_grants('aggregate_usage') }}
{{ m.api_function('aggregate_usage', 'p_period_type text, p_start_at timestamptz, p_end_at timestamptz', 'integer', 'p_period_type, p_start_at, p_end_at',
   'Recomputes daily or monthly UTC rollups for buckets starting in [start_at, end_at); re-runnable. Needs service_role (42501); bad period type or range: 22023.') }}

-- private.live_plan(organization_id uuid) -> catalog.plans
-- The plan of the organization's live subscription (null when none).
create or replace function private.live_plan(organization_id uuid)
  returns catalog.plans
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
declare
  found_plan catalog.plans;
begin
  select p.* into found_plan from billing.subscriptions s join catalog.plans p on p.key = s.plan_key
   where s.organization_id = live_plan.organization_id and s.status <> 'canceled';
  return found_plan;
end
$fn$;
comment on function private.live_plan is 'Internal: the plan of the live subscription.';
revoke all on function private.live_plan from public, anon, authenticated;

-- private.plan_at(organization_id uuid, at timestamptz) -> catalog.plans
-- The plan the organization's subscription had at `at`, from the history
-- the database wrote (created, upgrade, downgrade, cancelled): null before
-- the first subscription and after a cancellation. Internal.
create or replace function private.plan_at(organization_id uuid, at timestamptz)
  returns catalog.plans
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
declare
  found_plan catalog.plans;
begin
  select p.* into found_plan
    from (select h.new_plan_key, h.change_type
            from billing.subscription_history h
           where h.organization_id = plan_at.organization_id and not h.reported and h.created_at <= plan_at.at
             and h.change_type in ('created', 'trial_started', 'upgrade', 'downgrade', 'cancelled', 'reactivated')
           order by h.created_at desc, h.id desc
           limit 1) last
    join catalog.plans p on p.key = last.new_plan_key
   where last.change_type <> 'cancelled';
  return found_plan;
end
$fn$;
comment on function private.plan_at is 'Internal: the plan in force at a moment, from subscription_history.';
revoke all on function private.plan_at from public, anon, authenticated;

-- private.plan_for_period(organization_id uuid, period_start timestamptz, period_end timestamptz) -> catalog.plans
-- The plan usage of a period is measured against: the plan in force at its
-- end (or now, for the running period), or, when the subscription was
-- cancelled during the period, the plan it had just before. Internal.
create or replace function private.plan_for_period(organization_id uuid, period_start timestamptz, period_end timestamptz)
  returns catalog.plans
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
declare
  plan catalog.plans := private.plan_at(organization_id, least(clock_timestamp(), period_end - interval '1 microsecond'));
  cancelled_at timestamptz;
begin
  if plan.key is null then
    select max(h.created_at) into cancelled_at from billing.subscription_history h
     where h.organization_id = plan_for_period.organization_id and not h.reported and h.change_type = 'cancelled'
       and h.created_at >= period_start and h.created_at < period_end;
    if cancelled_at is not null then
      plan := private.plan_at(organization_id, cancelled_at - interval '1 microsecond');
    end if;
  end if;
  return plan;
end
$fn$;
comment on function private.plan_for_period is 'Internal: the plan a period''s usage is measured against (cancellations included).';
revoke all on function private.plan_for_period from public, anon, authenticated;

-- private.seats_used(organization_id uuid) -> bigint
-- Active memberships of type member (guests are free seats).
create or replace function private.seats_used(organization_id uuid)
  returns bigint
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
begin
  return (
    select count(*) from tenancy.memberships m
     where m.organization_id = seats_used.organization_id and m.status = 'active' and m.member_type = 'member');
end
$fn$;
comment on function private.seats_used is 'Internal: paid seats in use.';
revoke all on function private.seats_used from public, anon, authenticated;

-- private.seats_billed(organization_id uuid, period_start date) -> bigint
-- The paid seats a billing period is billed on: for the running period,
-- the highest count a join reached in it (usage.seat_peaks, from 0022 on)
-- or the live count, the higher; for an ended period, its peak, or the
-- live count when nobody joined in it. Internal: summarize_period.
create or replace function private.seats_billed(organization_id uuid, period_start date)
  returns bigint
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
declare
  peak bigint;
begin
  if to_regclass('usage.seat_peaks') is not null then
    select s.peak into peak from usage.seat_peaks s
     where s.organization_id = seats_billed.organization_id and s.period_start = seats_billed.period_start;
  end if;
  -- A period that has ended is billed on its peak; the members of today
  -- count only for the running period, or for an ended one without a
  -- recorded peak (nobody joined in it).
  if peak is not null
     and seats_billed.period_start < (select p.start_date from private.billing_period(seats_billed.organization_id, now()) p) then
    return peak;
  end if;
  return greatest(coalesce(peak, 0), private.seats_used(organization_id));
end
$fn$;
comment on function private.seats_billed is 'Internal: paid seats a billing period is billed on (its peak at a join, or the live count).';
revoke all on function private.seats_billed from public, anon, authenticated;

-- private.summarize_period(organization_id uuid, period_start date) -> integer
-- Writes the monthly summary of every limited feature of the plan in force
-- at the end of the billing period starting on period_start (units used as
-- each meter's aggregation means them: private.meter_usage), and its
-- overage fee (units over the limit x overage price; removed again when no
-- longer over). Returns the number of features summarized. Refuses: no
-- subscription in the period (P0002). No permission check: internal.
create or replace function private.summarize_period(organization_id uuid, period_start date)
  returns integer
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  plan catalog.plans;
  period record;
  n int;
begin
  select * into period from private.billing_period(summarize_period.organization_id, period_start::timestamp at time zone 'UTC' + interval '12 hours');
  -- The plan in force at the end of the period (or now, for the running one).
  plan := private.plan_for_period(summarize_period.organization_id, period.period_start, period.period_end);
  if plan.key is null then
    raise exception 'organization % had no subscription in the period starting %', organization_id, period_start using errcode = 'P0002';
  end if;
  with used as (
    select f.key as feature_key, pf.limit_value, pf.overage_unit_price_minor,
           case when f.counts = 'seats' then private.seats_billed(summarize_period.organization_id, summarize_period.period_start)
                -- the meter's usage as its aggregation means it (a stock: the period's highest total)
                else private.meter_usage(summarize_period.organization_id, f.meter_key, summarize_period.period_start, false) end as units_used
      from catalog.plan_features pf
      join catalog.features f on f.key = pf.feature_key and f.kind = 'limit'
     where pf.plan_key = plan.key
  ), summaries as (
    insert into usage.monthly_summaries as s (organization_id, feature_key, period_start, period_end, plan_key, units_used, limit_value)
    select summarize_period.organization_id, u.feature_key, summarize_period.period_start, period.end_date, plan.key, u.units_used, u.limit_value
      from used u
    on conflict on constraint monthly_summaries_pkey
    do update set period_end = excluded.period_end, plan_key = excluded.plan_key, units_used = excluded.units_used,
                  limit_value = excluded.limit_value, updated_at = now()
    returning s.feature_key
  ), fees as (
    insert into usage.overage_fees as o (organization_id, feature_key, period_start, units_over, unit_price_minor, amount_minor, currency)
    select summarize_period.organization_id, u.feature_key, summarize_period.period_start, u.units_used - u.limit_value,
           u.overage_unit_price_minor, (u.units_used - u.limit_value) * u.overage_unit_price_minor, plan.currency
      from used u
     where u.limit_value >= 0 and u.units_used > u.limit_value and u.overage_unit_price_minor is not null
    on conflict on constraint overage_fees_pkey
    do update set units_over = excluded.units_over, unit_price_minor = excluded.unit_price_minor,
                  amount_minor = excluded.amount_minor, currency = excluded.currency, updated_at = now()
    returning o.feature_key
  ), stale as (
    delete from usage.overage_fees o
     where o.organization_id = summarize_period.organization_id and o.period_start = summarize_period.period_start
       and o.feature_key not in (select u.feature_key from used u
                                  where u.limit_value >= 0 and u.units_used > u.limit_value and u.overage_unit_price_minor is not null)
    returning o.feature_key
  )
  select count(*) into n from summaries;
  return n;
end
$fn$;
comment on function private.summarize_period is 'Internal: monthly summaries and overage fees of one billing period.';
revoke all on function private.summarize_period from public, anon, authenticated;

-- private.record_organization_usage(org_id uuid, period_start date) -> uuid
-- Seed 003: summarizes the billing period starting on period_start (default:
-- the current one) and stores a snapshot with has_exceeded_limits and
-- exceeded_limits_details {feature: {limit, actual, exceeded_by}}; returns
-- the snapshot's id (the same row on re-runs). Refuses: not a member with
-- billing.view, not trusted, not platform staff (42501); a date that does
-- not start a billing period (22023); no live subscription (P0002).
create or replace function private.record_organization_usage(org_id uuid, period_start date)
  returns uuid
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  period record;
  start_day date;
  snapshot uuid;
begin
  perform private.require_member_or_platform(org_id, 'billing.view', 'platform.tenant.read');
  if period_start is null then
    select p.start_date into start_day from private.billing_period(org_id, now()) p;
  else
    select p.start_date into start_day from private.billing_period(org_id, period_start::timestamp at time zone 'UTC' + interval '12 hours') p;
    if start_day <> period_start then
      raise exception 'record_organization_usage: % does not start a billing period of organization % (that period starts on %)',
        period_start, org_id, start_day using errcode = '22023';
    end if;
  end if;
  perform private.summarize_period(org_id, start_day);
  select * into period from private.billing_period(org_id, start_day::timestamp at time zone 'UTC' + interval '12 hours');
  insert into usage.organization_usage as u (organization_id, period_start, period_end, plan_key, usage, seats_count,
                                             has_exceeded_limits, exceeded_limits_details)
  select org_id, start_day, period.end_date - 1,
         (private.plan_for_period(org_id, period.period_start, period.period_end)).key,
         coalesce(jsonb_object_agg(s.feature_key, s.units_used), '{}'),
         private.seats_used(org_id),
         coalesce(bool_or(s.limit_value >= 0 and s.units_used > s.limit_value), false),
         coalesce(jsonb_object_agg(s.feature_key, jsonb_build_object('limit', s.limit_value, 'actual', s.units_used,
                                                                     'exceeded_by', s.units_used - s.limit_value))
                  filter (where s.limit_value >= 0 and s.units_used > s.limit_value), '{}')
    from usage.monthly_summaries s
   where s.organization_id = org_id and s.period_start = start_day
  on conflict on constraint organization_usage_one_per_period
  do update set period_end = excluded.period_end, plan_key = excluded.plan_key, usage = excluded.usage,
                seats_count = excluded.seats_count, has_exceeded_limits = excluded.has_exceeded_limits,
                exceeded_limits_details = excluded.exceeded_limits_details, updated_at = now()
  returning u.id into snapshot;
  return snapshot;
end
$fn$;
comment on function private.record_organization_usage is 'Definer twin of record_organization_usage.';
{{ m.private_grants('record_organization_usage') }}
{{ m.api_function('record_organization_usage', 'p_organization_id uuid, p_period_start date default null', 'uuid', 'p_organization_id, p_period_start',
   'Snapshot of usage against limits for a billing period (default: current); returns its id. Needs billing.view (42501); not a period start: 22023; no subscription: P0002.') }}

-- private.check_feature_access(user_id uuid, feature_key text, org_id uuid) -> jsonb
-- Seed 001: the organization's allowance of a feature for this period, used
-- as the feature's meter aggregates (private.meter_usage; seats: members):
-- {plan, feature, limit, used, remaining, unlimited, allowed,
--  overage_unit_price} (limit -1 = unlimited; allowed = the next unit may be
-- used: unlimited, under the limit, or billed as overage), or for a flags
-- feature {plan, feature, flags, allowed}. A feature missing from the plan
-- answers limit 0, allowed false. Refuses: asking for another user without
-- being trusted or platform staff, or for a user who is not a member of the
-- organization (42501); an unknown feature key (22023); an organization
-- without a live subscription (P0002). Callable by authenticated users.
create or replace function private.check_feature_access(user_id uuid, feature_key text, org_id uuid)
  returns jsonb
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
declare
  trusted boolean := private.is_trusted_caller();
  feature catalog.features;
  plan catalog.plans;
  pf catalog.plan_features;
  used bigint := 0;
  lim bigint;
begin
  if not trusted and user_id is distinct from auth.uid() and not private.has_system_permission('platform.tenant.read') then
    raise exception 'check_feature_access: you may only check your own access' using errcode = '42501';
  end if;
  if not private.user_has_permission(org_id, user_id, 'tenant.read')
     and not trusted and not private.has_system_permission('platform.tenant.read') then
    raise exception 'check_feature_access: user % is not a member of organization %', user_id, org_id using errcode = '42501';
  end if;
  select * into feature from catalog.features f where f.key = check_feature_access.feature_key;
  if not found then
    raise exception 'check_feature_access: unknown feature key "%"', feature_key
      using errcode = '22023', hint = 'Feature keys are the rows of catalog.features.';
  end if;
  plan := private.live_plan(org_id);
  if plan.key is null then
    raise exception 'check_feature_access: organization % has no live subscription', org_id using errcode = 'P0002';
  end if;
  select * into pf from catalog.plan_features p where p.plan_key = plan.key and p.feature_key = feature.key;
  if feature.kind = 'flags' then
    return jsonb_build_object('plan', plan.key, 'feature', feature.key, 'flags', coalesce(pf.flags, '{}'),
                              'allowed', pf.plan_key is not null);
  end if;
  lim := coalesce(pf.limit_value, 0);
  if feature.counts = 'seats' then
    used := private.seats_used(org_id);
  else
    -- as the meter's aggregation means it; a stock (live_count, recurring sum): its total now
    used := private.meter_usage(org_id, feature.meter_key, (select p.start_date from private.billing_period(org_id, now()) p), true);
  end if;
  return jsonb_build_object(
    'plan', plan.key, 'feature', feature.key, 'limit', lim, 'used', used,
    'remaining', case when lim = -1 then null else greatest(lim - used, 0) end,
    'unlimited', lim = -1,
    'allowed', lim = -1 or used < lim or pf.overage_unit_price_minor is not null,
    'overage_unit_price', pf.overage_unit_price_minor);
end
$fn$;
comment on function private.check_feature_access is 'Definer twin of check_feature_access.';
{{ m.private_grants('check_feature_access') }}
{{ m.api_function('check_feature_access', 'p_user_id uuid, p_feature_key text, p_organization_id uuid', 'jsonb', 'p_user_id, p_feature_key, p_organization_id',
   'Limit, used, remaining, unlimited, allowed, overage_unit_price and plan of a feature for the current period. Not a member / another user: 42501; unknown feature: 22023; no subscription: P0002.', stable=true, cached=true) }}

-- Utilization per feature and period, with the caller's rights: one row
-- per feature (seed 003's wide view, a column per meter, is
-- organization_usage_summary in functions/0015). period_end is the last day.
create or replace view {{ api }}.organization_feature_usage
  with (security_invoker = true) as
select s.organization_id, o.name as organization_name, s.period_start, s.period_end - 1 as period_end, s.plan_key,
       p.name as plan_name, s.feature_key, s.units_used, s.limit_value, s.limit_value = -1 as unlimited,
       case when s.limit_value > 0 then round(100.0 * s.units_used / s.limit_value, 2) end as utilization_pct,
       s.limit_value >= 0 and s.units_used > s.limit_value as exceeded,
       coalesce(f.amount_minor, 0) as overage_amount_minor
  from usage.monthly_summaries s
  join tenancy.organizations o on o.id = s.organization_id
  join catalog.plans p on p.key = s.plan_key
  left join usage.overage_fees f
    on f.organization_id = s.organization_id and f.feature_key = s.feature_key and f.period_start = s.period_start;
comment on view {{ api }}.organization_feature_usage is 'Usage against limits, one row per organization, billing period and limit feature; period_end is the period''s last day; utilization_pct is null for unlimited (-1) and zero limits.';
{{ m.view_grants(api ~ '.organization_feature_usage') }}

{{ m.updated_at('usage.organization_usage') }}
