-- catalog: loading a catalog document (seeds/catalog.json or a team's own).
{% import 'sql/macros.sql' as m with context %}

-- private.load_catalog(doc jsonb) -> jsonb
-- Upserts meters (and, from 0015 on, their aliases), features, plans and
-- plan features from the document (format: seeds/catalog.json) and returns
-- counts of rows written and the plans deactivated. Idempotent: unchanged
-- rows are not rewritten. A plan missing from the document is
-- deactivated, not deleted, so subscriptions keep it; a plan's features
-- missing from the document are removed, and so are a listed meter's
-- aliases. Rebuilds organization_usage_summary (0015: a column per meter
-- and limit) from the catalog it leaves. Refuses a document without
-- meters, features and plans arrays (22023); bad values fail on the
-- tables' named constraints. Callable by service_role (and the migrating
-- role through `tenantdb seed`).
create or replace function private.load_catalog(doc jsonb)
  returns jsonb
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  n_meters int; n_aliases int := 0; n_features int; n_plans int; n_plan_features int; n_removed int;
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


  insert into catalog.features (key, name, kind, meter_key, counts, description)
  select r.key, r.name, r.kind, r.meter, r.counts, r.description
    from jsonb_to_recordset(doc -> 'features') as r (key text, name text, kind text, meter text, counts text, description text)
  on conflict (key) do update
    set name = excluded.name, kind = excluded.kind, meter_key = excluded.meter_key,
        counts = excluded.counts, description = excluded.description
    where (catalog.features.name, catalog.features.kind, catalog.features.meter_key, catalog.features.counts, catalog.features.description)
          is distinct from (excluded.name, excluded.kind, excluded.meter_key, excluded.counts, excluded.description);
  get diagnostics n_features = row_count;

  -- A listed meter's aliases are exactly those the document gives it
  -- (after the features: an alias may not be a meter or feature key).
  if to_regclass('catalog.meter_aliases') is not null then
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
  end if;

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
  if to_regprocedure('private.build_usage_summary_view()') is not null then
    perform private.build_usage_summary_view();
  end if;

  return jsonb_build_object('meters', n_meters, 'meter_aliases', n_aliases, 'features', n_features, 'plans', n_plans,
                            'plan_features', n_plan_features, 'plan_features_removed', n_removed,
                            'plans_deactivated', to_jsonb(deactivated));
end
$fn$;
comment on function private.load_catalog is 'Upserts a catalog document (seeds/catalog.json format); deactivates plans left out; rebuilds organization_usage_summary. Idempotent.';
{{ m.private_grants('load_catalog', 'service_role') }}

{{ m.updated_at('catalog.plans') }}
