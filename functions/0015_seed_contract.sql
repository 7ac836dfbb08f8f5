-- 0015 seed contract: record_usage with meter aliases and feature keys, the
-- catalog loader, seed 003's wide organization_usage_summary, the plan ids of
-- subscription_history and the updated_at stamps seed 001 lists.
{% import 'sql/macros.sql' as m with context %}

-- private.meter_for(key text) -> text
-- The meter a key names: a meter key itself, a meter alias
-- (catalog.meter_aliases), or a feature key whose feature names a meter;
-- null for anything else (the caller raises its own error). Internal.
create or replace function private.meter_for(key text)
  returns text
  language sql
  stable
  {{ m.pinned() }}
as $fn$
  select coalesce((select mt.key from catalog.meters mt where mt.key = meter_for.key),
                  (select a.meter_key from catalog.meter_aliases a where a.alias = meter_for.key),
                  (select f.meter_key from catalog.features f where f.key = meter_for.key));
$fn$;
comment on function private.meter_for is 'The meter a key names: a meter key, a meter alias or a feature key (its meter); null when none.';
{{ m.private_grants('meter_for', 'service_role') }}

-- private.meter_aliases_not_keys() -> trigger
-- BEFORE INSERT OR UPDATE on catalog.meter_aliases: refuses (22023) an alias
-- that is a meter key or a feature key: a key means itself, never another
-- meter.
create or replace function private.meter_aliases_not_keys()
  returns trigger
  language plpgsql
  {{ m.pinned() }}
as $fn$
begin
  if exists (select from catalog.meters mt where mt.key = new.alias)
     or exists (select from catalog.features f where f.key = new.alias) then
    raise exception 'meter alias "%" is already a meter or feature key', new.alias
      using errcode = '22023', constraint = 'meter_aliases_alias_not_a_key',
            hint = 'An alias is another name for a meter; pick a name no meter or feature has.';
  end if;
  return new;
end
$fn$;
comment on function private.meter_aliases_not_keys is 'Trigger: a meter alias may not be a meter or feature key (22023).';
revoke all on function private.meter_aliases_not_keys from public, anon, authenticated;
drop trigger if exists alias_not_a_key on catalog.meter_aliases;
create trigger alias_not_a_key
  before insert or update on catalog.meter_aliases
  for each row execute function private.meter_aliases_not_keys();

-- private.record_usage(org_id uuid, meter text, quantity bigint, idempotency_key text,
--   occurred_at timestamptz, metadata jsonb) -> table (event_id uuid, duplicate boolean)
-- Records one usage event and adds it to the live counter of its billing
-- period, in the caller's transaction. A key the organization used before
-- (ever, also concurrently) returns the first event with duplicate = true
-- and writes nothing. meter names a meter that sums: its key, one of its
-- aliases, or the key of a feature that names it (private.meter_for); the
-- event is stored under the meter's key. A counting meter (projects) is fed
-- by its table's trigger only.
-- Refuses: not a member with usage.record (guests and suspended
-- organizations lack it) and not trusted (42501); unknown meter, quantity
-- outside 1..10^12, blank key, non-object metadata (22023); occurred_at
-- before the first day of the previous UTC month or more than one hour
-- ahead (22023).
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
  written record;
begin
  if not (private.has_permission(org_id, 'usage.record') or private.is_trusted_caller()) then
    raise exception 'record_usage: permission usage.record is required in organization %', org_id using errcode = '42501';
  end if;
  if quantity is null or quantity <= 0 or quantity > 1000000000000 then
    raise exception 'record_usage: quantity must be between 1 and 10^12, got %', quantity using errcode = '22023';
  end if;
  if coalesce(btrim(idempotency_key), '') = '' then
    raise exception 'record_usage: an idempotency key is required' using errcode = '22023';
  end if;
  if jsonb_typeof(coalesce(metadata, '{}')) <> 'object' then
    raise exception 'record_usage: metadata must be a JSON object' using errcode = '22023';
  end if;
  select mt.max_per_event, mt.aggregation into meter_bound, meter_aggregation from catalog.meters mt where mt.key = resolved;
  if not found then
    raise exception 'record_usage: unknown meter "%": not a meter key, a meter alias or a feature with a meter', meter
      using errcode = '22023',
            hint = 'Meters are the keys of catalog.meters (api_call, record_created, ...), their aliases are in catalog.meter_aliases, and a feature names its meter in catalog.features.meter_key.';
  end if;
  if meter_aggregation = 'count' then
    raise exception 'record_usage: meter % counts live rows; it is recorded by its table, not by record_usage', resolved
      using errcode = '22023', hint = 'Insert into the metered table (e.g. app.projects).';
  end if;
  if quantity > meter_bound then
    raise exception 'record_usage: meter % takes at most % per event, got %', resolved, meter_bound, quantity
      using errcode = '22023', hint = 'catalog.meters.max_per_event';
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
  -- One slot per session (pid mod 16): concurrent writers of one
  -- organization update different rows instead of queueing on one.
  insert into usage.counters as c (organization_id, meter_key, period_start, slot, quantity, event_count)
  values (org_id, resolved, period, pg_backend_pid() % 16, quantity, 1)
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
   'Records a usage event once per (organization, idempotency key) and counts it at commit; returns its id and whether it was a replay. p_meter_key: a meter key, one of its aliases, or a feature key (its meter). Needs usage.record (42501); unknown meter, bad quantity, key or time: 22023.') }}

-- private.usage_key_event(org_id uuid, idempotency_key text) -> uuid
-- The event id an accepted idempotency key stands for, read with a fresh
-- snapshot (VOLATILE): record_usage_batch asks it only for a key that a
-- concurrent batch accepted while this one waited. Internal.
create or replace function private.usage_key_event(org_id uuid, idempotency_key text)
  returns uuid
  language plpgsql
  volatile
  {{ m.definer() }}
as $fn$
begin
  return (select k.event_id from usage.idempotency_keys k
           where k.organization_id = usage_key_event.org_id and k.idempotency_key = usage_key_event.idempotency_key);
end
$fn$;
comment on function private.usage_key_event is 'Internal: the event id of an accepted usage idempotency key, read afresh.';
revoke all on function private.usage_key_event from public, anon, authenticated;

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

  -- The first invalid item, if any (occurred_at is checked by its cast below).
  select e.i, problem into bad
    from jsonb_array_elements(events) with ordinality as e (v, i)
    left join catalog.meters mt on mt.key = private.meter_for(coalesce(e.v ->> 'meter_key', e.v ->> 'feature_key'))
   cross join lateral (select case
            when jsonb_typeof(e.v) <> 'object' then 'is not a JSON object'
            when jsonb_typeof(e.v -> 'quantity') is distinct from 'number' or (e.v ->> 'quantity') !~ '^[0-9]{1,13}$'
              then 'quantity must be a whole number between 1 and 10^12'
            when (e.v ->> 'quantity')::bigint not between 1 and 1000000000000
              then 'quantity must be a whole number between 1 and 10^12'
            when coalesce(btrim(e.v ->> 'idempotency_key'), '') = '' then 'has no idempotency_key'
            when jsonb_typeof(coalesce(e.v -> 'metadata', '{}')) <> 'object' then 'metadata must be a JSON object'
            when mt.key is null then format('unknown meter "%s"', coalesce(e.v ->> 'meter_key', e.v ->> 'feature_key'))
            when mt.aggregation = 'count' then format('meter %s counts live rows; it is recorded by its table', mt.key)
            when (e.v ->> 'quantity')::bigint > mt.max_per_event
              then format('meter %s takes at most %s per event', mt.key, mt.max_per_event)
          end as problem) as c
   where c.problem is not null
   order by e.i
   limit 1;
  if found then
    raise exception 'record_usage_batch: item % %', bad.i, bad.problem
      using errcode = '22023', hint = 'Nothing was recorded; correct the item and send the batch again.';
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
  calendar := exists (select from billing.settings s where s.organization_id = org_id);

  return query
  with items as (
    select e.i::integer as i, e.v ->> 'idempotency_key' as key, private.meter_for(coalesce(e.v ->> 'meter_key', e.v ->> 'feature_key')) as meter,
           (e.v ->> 'quantity')::bigint as quantity, coalesce((e.v ->> 'occurred_at')::timestamptz, now()) as at,
           coalesce(e.v -> 'metadata', '{}') as metadata
      from jsonb_array_elements(events) with ordinality as e (v, i)
  ), firsts as (
    -- the first item of each key, with the id its event will have
    select distinct on (it.key) it.*, gen_random_uuid() as id
      from items it
     order by it.key, it.i
  ), keys as (
    -- Keys claimed in key order: two batches sharing keys wait on each
    -- other in one direction only, never in a cycle (no deadlock).
    insert into usage.idempotency_keys as k (organization_id, idempotency_key, event_id, occurred_at)
    select org_id, f.key, f.id, f.at from firsts f order by f.key
    on conflict on constraint idempotency_keys_pkey do nothing
    returning k.idempotency_key, k.event_id
  ), written as (
    insert into usage.events as ev (organization_id, id, meter_key, quantity, idempotency_key, occurred_at, user_id, metadata)
    select org_id, f.id, f.meter, f.quantity, f.key, f.at, auth.uid(), f.metadata
      from firsts f join keys k on k.idempotency_key = f.key
    returning ev.meter_key, ev.quantity, ev.occurred_at
  ), counted as (
    insert into usage.counters as c (organization_id, meter_key, period_start, slot, quantity, event_count)
    select org_id, w.meter_key, w.period, pg_backend_pid() % 16, sum(w.quantity), count(*)
      from (select wr.meter_key, wr.quantity,
                   case when calendar then (select p.start_date from private.billing_period(org_id, wr.occurred_at) p)
                        else date_trunc('month', wr.occurred_at at time zone 'UTC')::date end as period
              from written wr) w
     group by w.meter_key, w.period
    on conflict on constraint counters_pkey
    do update set quantity = c.quantity + excluded.quantity, event_count = c.event_count + excluded.event_count, updated_at = now()
  )
  -- A key not claimed here was accepted before: its event id is in the
  -- statement's snapshot, or (accepted by a batch that committed while
  -- this one waited on the key) read afresh by usage_key_event.
  select it.i, it.key,
         coalesce(k.event_id, old.event_id, private.usage_key_event(org_id, it.key)),
         k.event_id is null or it.i <> f.i
    from items it
    join firsts f on f.key = it.key
    left join keys k on k.idempotency_key = it.key
    left join usage.idempotency_keys old
      on k.event_id is null and old.organization_id = org_id and old.idempotency_key = it.key
   order by it.i;
end
$fn$;
comment on function private.record_usage_batch is 'Definer twin of record_usage_batch.';
{{ m.private_grants('record_usage_batch') }}
{{ m.api_function('record_usage_batch', 'p_organization_id uuid, p_events jsonb',
   'table (item integer, idempotency_key text, event_id uuid, duplicate boolean)', 'p_organization_id, p_events',
   'Records many usage events at once, all or nothing: events is a JSON array of {meter_key (or feature_key), quantity, idempotency_key, occurred_at?, metadata?}; returns each item''s event id and whether it was a replay. Needs usage.record (42501); an invalid item or more than 10000 items: 22023, nothing written.') }}


create or replace function private.load_catalog(doc jsonb)
  returns jsonb
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  n_meters int; n_aliases int; n_features int; n_plans int; n_plan_features int; n_removed int;
  deactivated text[];
  bad_plan text; bad_feature text;
begin
  if doc is null or jsonb_typeof(doc -> 'meters') is distinct from 'array'
     or jsonb_typeof(doc -> 'features') is distinct from 'array'
     or jsonb_typeof(doc -> 'plans') is distinct from 'array' then
    raise exception 'load_catalog: the document needs arrays "meters", "features" and "plans"'
      using errcode = '22023', hint = 'See seeds/catalog.json for the format.';
  end if;

  insert into catalog.meters (key, name, unit, description, aggregation)
  select r.key, r.name, coalesce(r.unit, 'unit'), r.description, coalesce(r.aggregation, 'sum')
    from jsonb_to_recordset(doc -> 'meters') as r (key text, name text, unit text, description text, aggregation text)
  on conflict (key) do update
    set name = excluded.name, unit = excluded.unit, description = excluded.description, aggregation = excluded.aggregation
    where (catalog.meters.name, catalog.meters.unit, catalog.meters.description, catalog.meters.aggregation)
          is distinct from (excluded.name, excluded.unit, excluded.description, excluded.aggregation);
  get diagnostics n_meters = row_count;

  -- A listed meter's aliases are exactly those the document gives it.
  delete from catalog.meter_aliases a
   using jsonb_array_elements(doc -> 'meters') as mt
   where a.meter_key = mt ->> 'key'
     and not coalesce(mt -> 'aliases', '[]') ? a.alias;
  insert into catalog.meter_aliases (alias, meter_key)
  select al.alias, mt ->> 'key'
    from jsonb_array_elements(doc -> 'meters') as mt
   cross join lateral jsonb_array_elements_text(coalesce(mt -> 'aliases', '[]')) as al (alias)
  on conflict (alias) do update set meter_key = excluded.meter_key
    where catalog.meter_aliases.meter_key is distinct from excluded.meter_key;
  get diagnostics n_aliases = row_count;

  insert into catalog.features (key, name, kind, meter_key, counts, description)
  select r.key, r.name, r.kind, r.meter, r.counts, r.description
    from jsonb_to_recordset(doc -> 'features') as r (key text, name text, kind text, meter text, counts text, description text)
  on conflict (key) do update
    set name = excluded.name, kind = excluded.kind, meter_key = excluded.meter_key,
        counts = excluded.counts, description = excluded.description
    where (catalog.features.name, catalog.features.kind, catalog.features.meter_key, catalog.features.counts, catalog.features.description)
          is distinct from (excluded.name, excluded.kind, excluded.meter_key, excluded.counts, excluded.description);
  get diagnostics n_features = row_count;

  insert into catalog.plans (key, name, price_minor, currency, billing_interval, rank, is_active, is_custom)
  select r.key, r.name, r.price_minor, r.currency, coalesce(r.interval, 'month'), coalesce(r.rank, 0), true, coalesce(r.custom, false)
    from jsonb_to_recordset(doc -> 'plans')
         as r (key text, name text, price_minor bigint, currency text, "interval" text, rank int, custom boolean)
  on conflict (key) do update
    set name = excluded.name, price_minor = excluded.price_minor, currency = excluded.currency,
        billing_interval = excluded.billing_interval, rank = excluded.rank, is_active = true, is_custom = excluded.is_custom
    where (catalog.plans.name, catalog.plans.price_minor, catalog.plans.currency, catalog.plans.billing_interval,
           catalog.plans.rank, catalog.plans.is_active, catalog.plans.is_custom)
          is distinct from (excluded.name, excluded.price_minor, excluded.currency, excluded.billing_interval,
                            excluded.rank, true, excluded.is_custom);
  get diagnostics n_plans = row_count;

  with listed as (select p ->> 'key' as key from jsonb_array_elements(doc -> 'plans') as p),
       gone as (
         update catalog.plans pl set is_active = false
          where pl.is_active and pl.key not in (select key from listed)
          returning pl.key)
  select coalesce(array_agg(key order by key), '{}') into deactivated from gone;

  select p ->> 'key', f.key into bad_plan, bad_feature
    from jsonb_array_elements(doc -> 'plans') as p
    cross join lateral jsonb_each(coalesce(p -> 'features', '{}')) as f
   where not exists (select from catalog.features ft where ft.key = f.key)
   limit 1;
  if bad_feature is not null then
    raise exception 'load_catalog: plan % names unknown feature "%"', bad_plan, bad_feature
      using errcode = '22023', hint = 'Declare it under "features" first.';
  end if;

  insert into catalog.plan_features (plan_key, feature_key, feature_kind, limit_value, overage_unit_price_minor, flags)
  select p ->> 'key', f.key, ft.kind, (f.value ->> 'limit')::bigint,
         (f.value ->> 'overage_unit_price_minor')::bigint, f.value -> 'flags'
    from jsonb_array_elements(doc -> 'plans') as p
    cross join lateral jsonb_each(coalesce(p -> 'features', '{}')) as f
    join catalog.features ft on ft.key = f.key
  on conflict (plan_key, feature_key) do update
    set feature_kind = excluded.feature_kind, limit_value = excluded.limit_value,
        overage_unit_price_minor = excluded.overage_unit_price_minor, flags = excluded.flags
    where (catalog.plan_features.feature_kind, catalog.plan_features.limit_value,
           catalog.plan_features.overage_unit_price_minor, catalog.plan_features.flags)
          is distinct from (excluded.feature_kind, excluded.limit_value, excluded.overage_unit_price_minor, excluded.flags);
  get diagnostics n_plan_features = row_count;

  delete from catalog.plan_features pf
   where pf.plan_key in (select p ->> 'key' from jsonb_array_elements(doc -> 'plans') as p)
     and not exists (select from jsonb_array_elements(doc -> 'plans') as p
                      where p ->> 'key' = pf.plan_key and (p -> 'features') ? pf.feature_key);
  get diagnostics n_removed = row_count;

  -- seed 003's wide view follows the meters and limits just loaded.
  perform private.build_usage_summary_view();

  return jsonb_build_object('meters', n_meters, 'meter_aliases', n_aliases, 'features', n_features, 'plans', n_plans,
                            'plan_features', n_plan_features, 'plan_features_removed', n_removed,
                            'plans_deactivated', to_jsonb(deactivated));
end
$fn$;
comment on function private.load_catalog is 'Upserts a catalog document (seeds/catalog.json format); deactivates plans left out; rebuilds organization_usage_summary. Idempotent.';
{{ m.private_grants('load_catalog', 'service_role') }}

-- private.build_usage_summary_view() -> integer
-- (Re)creates {{ api }}.organization_usage_summary, seed 003's wide view:
-- one row per organization and billing period (usage.organization_usage,
-- written by record_organization_usage) with, for each limit feature of
-- the catalog, the usage count, the plan's limit and the utilization:
--   <meter>_count            usage of the feature's meter (seats_count for seats)
--   <feature key>            the plan's limit (-1 unlimited, null: not in the plan)
--   <meter>_utilization_pct  100 * count / limit, 2 decimals (null when the
--                            limit is -1, 0 or absent); named after the
--                            feature when several limits share a meter
-- A team whose catalog has meter bookings and feature max_bookings_per_month
-- gets bookings_count, max_bookings_per_month, bookings_utilization_pct.
-- Returns the number of columns. Refuses (22023) a catalog whose names
-- collide. Called by load_catalog (tenantdb seed) and at migrate.
create or replace function private.build_usage_summary_view()
  returns integer
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  cols text[] := array['u.organization_id', 'o.name as organization_name', 'u.period_start', 'u.period_end',
                       'u.plan_key', 'p.name as plan_name'];
  names text[] := array['organization_id', 'organization_name', 'period_start', 'period_end', 'plan_key', 'plan_name'];
  f record;
  count_col text;
  used text;
  lim text;
  pct_col text;
  dup text;
begin
  for f in
    select ft.key, ft.meter_key, ft.counts,
           count(*) over (partition by coalesce(ft.meter_key, ft.counts, ft.key)) as sharing,
           row_number() over (partition by coalesce(ft.meter_key, ft.counts, ft.key) order by ft.key) as nth
      from catalog.features ft
     where ft.kind = 'limit'
     order by ft.key
  loop
    count_col := coalesce(f.meter_key, f.counts, f.key) || '_count';
    used := case when f.counts = 'seats' then 'u.seats_count'
                 else format('(u.usage ->> %L)::bigint', f.key) end;
    lim := format('(lim.limits ->> %L)::bigint', f.key);
    if f.nth = 1 then
      cols := cols || format('%s as %I', used, count_col);
      names := names || count_col;
    end if;
    cols := cols || format('%s as %I', lim, f.key);
    names := names || f.key::text;
    pct_col := case when f.sharing = 1 then coalesce(f.meter_key, f.counts, f.key) else f.key end || '_utilization_pct';
    cols := cols || format('case when %2$s > 0 then round(100.0 * %1$s / %2$s, 2) end as %3$I', used, lim, pct_col);
    names := names || pct_col;
  end loop;
  cols := cols || array['u.has_exceeded_limits', 'u.exceeded_limits_details', 'u.updated_at'];
  names := names || array['has_exceeded_limits', 'exceeded_limits_details', 'updated_at'];
  select n into dup from unnest(names) as n group by n having count(*) > 1 limit 1;
  if dup is not null then
    raise exception 'build_usage_summary_view: the catalog makes two columns named "%"', dup
      using errcode = '22023', hint = 'Rename the meter or feature: a feature key may not equal another meter''s <meter>_count or <meter>_utilization_pct.';
  end if;

  drop view if exists {{ api }}.organization_usage_summary;
  execute format($view$
    create view {{ api }}.organization_usage_summary with (security_invoker = true) as
    select %s
      from usage.organization_usage u
      join tenancy.organizations o on o.id = u.organization_id
      left join catalog.plans p on p.key = u.plan_key
      left join lateral (select jsonb_object_agg(pf.feature_key, pf.limit_value) as limits
                           from catalog.plan_features pf where pf.plan_key = u.plan_key) lim on true$view$,
    array_to_string(cols, E',\n           '));
  comment on view {{ api }}.organization_usage_summary is
    'Seed 003: usage against limits, one row per organization and billing period (record_organization_usage snapshots), a <meter>_count, <limit feature> and <meter>_utilization_pct column per limit of the catalog; rebuilt by tenantdb seed. Per-feature rows: organization_feature_usage.';
  revoke all on {{ api }}.organization_usage_summary from public, anon;
  grant select on {{ api }}.organization_usage_summary to authenticated, service_role;
  return array_length(names, 1);
end
$fn$;
comment on function private.build_usage_summary_view is 'Rebuilds organization_usage_summary (seed 003''s wide view) from the catalog''s meters and limits; returns its column count.';
{{ m.private_grants('build_usage_summary_view', 'service_role') }}
select private.build_usage_summary_view();

-- private.subscription_history_plan_ids() -> trigger
-- BEFORE INSERT on billing.subscription_history: fills the plan ids from the
-- plan keys (or the keys from the ids, for seed 003's record_subscription_change
-- style of writing), and the provider's subscription id from the
-- subscription. Refuses (22023) a key and an id that name different plans.
create or replace function private.subscription_history_plan_ids()
  returns trigger
  language plpgsql
  {{ m.definer() }}
as $fn$
begin
  new.old_plan_key := coalesce(new.old_plan_key, (select p.key from catalog.plans p where p.id = new.old_plan_id));
  new.new_plan_key := coalesce(new.new_plan_key, (select p.key from catalog.plans p where p.id = new.new_plan_id));
  if new.old_plan_id is not null and new.old_plan_id is distinct from (select p.id from catalog.plans p where p.key = new.old_plan_key)
     or new.new_plan_id is not null and new.new_plan_id is distinct from (select p.id from catalog.plans p where p.key = new.new_plan_key) then
    raise exception 'subscription_history: a plan id and a plan key name different plans'
      using errcode = '22023', constraint = 'subscription_history_plan_id_matches_key';
  end if;
  new.old_plan_id := (select p.id from catalog.plans p where p.key = new.old_plan_key);
  new.new_plan_id := (select p.id from catalog.plans p where p.key = new.new_plan_key);
  if new.stripe_subscription_id is null and new.subscription_id is not null then
    new.stripe_subscription_id := (select s.provider_subscription_id from billing.subscriptions s
                                    where s.organization_id = new.organization_id and s.id = new.subscription_id);
  end if;
  return new;
end
$fn$;
comment on function private.subscription_history_plan_ids is 'Trigger: subscription_history carries plan ids and keys in step, and the provider subscription id.';
revoke all on function private.subscription_history_plan_ids from public, anon, authenticated;
drop trigger if exists subscription_history_plan_ids on billing.subscription_history;
create trigger subscription_history_plan_ids
  before insert on billing.subscription_history
  for each row execute function private.subscription_history_plan_ids();

{{ m.updated_at('catalog.plan_features') }}
{{ m.updated_at('usage.rollups') }}
