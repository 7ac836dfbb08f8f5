-- 0015 seed contract: meter aliases that no key may shadow, seed 003's wide
-- organization_usage_summary, the plan ids of subscription_history and the
-- updated_at stamps seed 001 lists. (record_usage resolves aliases and
-- feature keys through private.meter_for, and load_catalog loads aliases:
-- both in their own files, 0007 and 0005, guarded for a database without
-- 0015.)
{% import 'sql/macros.sql' as m with context %}

-- private.catalog_names_distinct() -> trigger
-- BEFORE INSERT OR UPDATE on catalog.meter_aliases, catalog.meters and
-- catalog.features: a name means one thing in record_usage. Refuses
-- (22023, catalog_names_distinct) an alias that is a meter or feature key,
-- and a meter or feature key that is an alias (it would take the alias's
-- usage over without a word).
create or replace function private.catalog_names_distinct()
  returns trigger
  language plpgsql
  {{ m.pinned() }}
as $fn$
begin
  if tg_table_name = 'meter_aliases' then
    if exists (select from catalog.meters mt where mt.key = new.alias)
       or exists (select from catalog.features f where f.key = new.alias) then
      raise exception 'meter alias "%" is already a meter or feature key', new.alias
        using errcode = '22023', constraint = 'catalog_names_distinct',
              hint = 'An alias is another name for a meter; pick a name no meter or feature has.';
    end if;
  elsif exists (select from catalog.meter_aliases a where a.alias = new.key) then
    raise exception '% key "%" is already an alias of meter %', rtrim(tg_table_name, 's'), new.key,
                    (select a.meter_key from catalog.meter_aliases a where a.alias = new.key)
      using errcode = '22023', constraint = 'catalog_names_distinct',
            hint = 'Remove the alias first (from the catalog document''s "aliases"), or pick another key.';
  end if;
  return new;
end
$fn$;
comment on function private.catalog_names_distinct is 'Trigger: meter keys, feature keys and meter aliases never share a name (22023).';
{{ m.row_trigger('catalog.meter_aliases', 'alias_not_a_key', 'before insert or update of alias', 'private.catalog_names_distinct') }}
drop trigger if exists key_not_an_alias on catalog.meters;
create trigger key_not_an_alias
  before insert or update of key on catalog.meters
  for each row execute function private.catalog_names_distinct();
drop trigger if exists key_not_an_alias on catalog.features;
create trigger key_not_an_alias
  before insert or update of key on catalog.features
  for each row execute function private.catalog_names_distinct();

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
-- Returns the number of columns. Leaves the view alone when its definition
-- would not change (its comment carries the definition's md5), so a view of
-- yours on it survives seeds and migrates that do not change the meters.
-- Refuses (22023) a catalog whose column names collide (Postgres keeps 63
-- characters of a name). Called by load_catalog (tenantdb seed) and at
-- migrate.
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
  definition text;
  digest text;
  note text;
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
  select left(n, 63) into dup from unnest(names) as n group by left(n, 63) having count(*) > 1 limit 1;
  if dup is not null then
    raise exception 'build_usage_summary_view: the catalog makes two columns named "%"', dup
      using errcode = '22023', hint = 'Rename the meter or feature: a feature key may not equal another meter''s <meter>_count or <meter>_utilization_pct.';
  end if;

  definition := format($view$
    create view {{ api }}.organization_usage_summary with (security_invoker = true) as
    select %s
      from usage.organization_usage u
      join tenancy.organizations o on o.id = u.organization_id
      left join catalog.plans p on p.key = u.plan_key
      left join lateral (select jsonb_object_agg(pf.feature_key, pf.limit_value) as limits
                           from catalog.plan_features pf where pf.plan_key = u.plan_key) lim on true$view$,
    array_to_string(cols, E',\n           '));
  digest := md5(definition);
  note := 'Usage against limits, one row per organization and billing period (record_organization_usage snapshots), '
    || 'a <meter>_count, <limit feature> and <meter>_utilization_pct column per limit of the catalog; rebuilt by tenantdb seed '
    || 'when the meters or limits change. Per-feature rows: organization_feature_usage. [definition ' || digest || ']';
  if coalesce(obj_description(to_regclass('{{ api }}.organization_usage_summary'), 'pg_class'), '') like '%[definition ' || digest || ']' then
    -- Same definition: the view stays (and views on it with it); only its
    -- comment is brought up to date.
    if obj_description(to_regclass('{{ api }}.organization_usage_summary'), 'pg_class') <> note then
      execute format('comment on view {{ api }}.organization_usage_summary is %L', note);
    end if;
    return array_length(names, 1);
  end if;
  drop view if exists {{ api }}.organization_usage_summary;
  execute definition;
  execute format('comment on view {{ api }}.organization_usage_summary is %L', note);
  revoke all on {{ api }}.organization_usage_summary from public, anon, authenticated, service_role;
  grant select on {{ api }}.organization_usage_summary to authenticated, service_role;
  return array_length(names, 1);
end
$fn$;
comment on function private.build_usage_summary_view is 'Rebuilds organization_usage_summary (one column per meter and limit) from the catalog''s meters and limits; returns its column count.';
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
{{ m.row_trigger('billing.subscription_history', 'subscription_history_plan_ids', 'before insert', 'private.subscription_history_plan_ids') }}

{{ m.updated_at('catalog.plan_features') }}
{{ m.updated_at('usage.rollups') }}
