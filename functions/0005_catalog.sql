-- catalog: loading a catalog document (seeds/catalog.json or a team's own).
{% import 'sql/macros.sql' as m with context %}

-- private.catalog_refuse(item text, err_state text, err_message text, err_constraint text) -> void
-- Raises a catalog item's failure again, naming the item (plan "pro",
-- feature "max_seats"): the SQLSTATE and the constraint stay the table's.
create or replace function private.catalog_refuse(item text, err_state text, err_message text, err_constraint text)
  returns void
  language plpgsql
  {{ m.pinned() }}
as $fn$
begin
  raise exception 'load_catalog: %: %', item, err_message
    using errcode = err_state, constraint = coalesce(err_constraint, ''),
          hint = 'Nothing was loaded; correct the document (format: seeds/catalog.schema.json) and seed again.';
end
$fn$;
comment on function private.catalog_refuse is 'Internal: re-raises a catalog item''s failure naming the item.';
revoke all on function private.catalog_refuse from public, anon, authenticated;

-- private.load_catalog(doc jsonb) -> jsonb
-- Upserts meters (and, from 0015 on, their aliases), features, plans and
-- plan features from the document (format: seeds/catalog.json, described
-- by seeds/catalog.schema.json) and returns counts of rows written and the
-- plans deactivated. Idempotent: unchanged rows are not rewritten. A plan
-- missing from the document is deactivated, not deleted, so subscriptions
-- keep it; a plan's features missing from the document are removed, and
-- so are a listed meter's aliases. Rebuilds organization_usage_summary
-- (0015: a column per meter and limit) from the catalog it leaves.
-- All or nothing. Refuses (22023): a document without meters, features
-- and plans arrays; a key the format does not know (prise_minor), naming
-- where; an item without a key it needs (a meter's name), naming it; a plan naming an unknown feature; a new aggregation, recurring or
-- field_name for a meter that has usage events. A value a table refuses is
-- refused with the table's SQLSTATE and constraint, naming the meter,
-- feature, plan or plan feature. Callable by service_role (and the
-- migrating role through `tenantdb seed`).
create or replace function private.load_catalog(doc jsonb)
  returns jsonb
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  n_meters int := 0; n_aliases int := 0; n_features int := 0; n_plans int := 0; n_plan_features int := 0; n_removed int;
  deactivated text[];
  bad_where text; bad_key text;
  r record;
  e_state text; e_message text; e_constraint text;
begin
  if doc is null or jsonb_typeof(doc) <> 'object' or jsonb_typeof(doc -> 'meters') is distinct from 'array'
     or jsonb_typeof(doc -> 'features') is distinct from 'array'
     or jsonb_typeof(doc -> 'plans') is distinct from 'array' then
    raise exception 'load_catalog: the document needs arrays "meters", "features" and "plans"'
      using errcode = '22023', hint = 'See seeds/catalog.json and seeds/catalog.schema.json for the format.';
  end if;

  -- Keys the format does not know: a typo (prise_minor) would silently load a default.
  select w, k into bad_where, bad_key from (
    select 'the document' as w, k, 0 as s, 0 as i from jsonb_object_keys(doc) k
     where k not in ('$schema', 'meters', 'features', 'plans')
    union all
    select format('%s[%s]%s', s.section, e.i - 1, coalesce(' ("' || (e.v ->> 'key') || '")', '')), k, s.n, e.i
      from (values ('meters', 1, array['key', 'name', 'unit', 'description', 'aggregation', 'recurring', 'field_name', 'aliases']),
                   ('features', 2, array['key', 'name', 'kind', 'meter', 'counts', 'description']),
                   ('plans', 3, array['key', 'name', 'price_minor', 'currency', 'interval', 'rank', 'custom', 'features']))
           as s (section, n, allowed)
     cross join lateral jsonb_array_elements(doc -> s.section) with ordinality as e (v, i)
     cross join lateral jsonb_object_keys(case when jsonb_typeof(e.v) = 'object' then e.v else '{"(not an object)": 0}' end) k
     where k <> all (s.allowed)
    union all
    select format('plan "%s", feature "%s"', p.v ->> 'key', f.key), k, 4, p.i
      from jsonb_array_elements(doc -> 'plans') with ordinality as p (v, i)
     cross join lateral jsonb_each(case when jsonb_typeof(p.v -> 'features') = 'object' then p.v -> 'features' else '{}' end) as f
     cross join lateral jsonb_object_keys(case when jsonb_typeof(f.value) = 'object' then f.value else '{"(not an object)": 0}' end) k
     where k not in ('limit', 'overage_unit_price_minor', 'flags')
  ) x order by s, i limit 1;
  if bad_key is not null then
    raise exception 'load_catalog: % has an unknown key "%"', bad_where, bad_key
      using errcode = '22023', hint = 'The format is seeds/catalog.schema.json; nothing was loaded.';
  end if;

  -- Keys an item cannot do without: named here, not as a null refused by a column.
  select w, k into bad_where, bad_key from (
    select format('%s[%s]%s', s.section, e.i - 1, coalesce(' ("' || (e.v ->> 'key') || '")', '')) as w, k, s.n, e.i
      from (values ('meters', 1, array['key', 'name']),
                   ('features', 2, array['key', 'name', 'kind']),
                   ('plans', 3, array['key', 'name', 'price_minor', 'currency'])) as s (section, n, required)
     cross join lateral jsonb_array_elements(doc -> s.section) with ordinality as e (v, i)
     cross join lateral unnest(s.required) as k
     where jsonb_typeof(e.v) = 'object' and ((e.v -> k) is null or jsonb_typeof(e.v -> k) = 'null')
  ) x order by n, i limit 1;
  if bad_key is not null then
    raise exception 'load_catalog: % needs "%"', bad_where, bad_key
      using errcode = '22023', hint = 'The format is seeds/catalog.schema.json; nothing was loaded.';
  end if;

  for r in select e.v, e.v ->> 'key' as key from jsonb_array_elements(doc -> 'meters') as e (v) loop
    -- A meter's usage is counted as its aggregation says when recorded: once
    -- it has events, counters or a live count (a table's live_count meter
    -- writes no event), changing how would re-read every period (a
    -- migration does that).
    if exists (select from catalog.meters mt
                where mt.key = r.key
                  and (mt.aggregation, mt.recurring, mt.field_name)
                      is distinct from (coalesce(r.v ->> 'aggregation', 'sum'), coalesce((r.v ->> 'recurring')::boolean, false),
                                        r.v ->> 'field_name'))
       and (exists (select from usage.events e where e.meter_key = r.key)
            or exists (select from usage.counters c where c.meter_key = r.key)
            or exists (select from usage.live_counts l where l.meter_key = r.key)) then
      raise exception 'load_catalog: meter "%" has usage recorded: its aggregation, recurring and field_name cannot change', r.key
        using errcode = '22023',
              hint = 'Keep them as they are (catalog.meters), or add a new meter; changing how recorded usage counts needs a migration.';
    end if;
    begin
      insert into catalog.meters as mt (key, name, unit, description, aggregation, recurring, field_name)
      values (r.key, r.v ->> 'name', coalesce(r.v ->> 'unit', 'unit'), r.v ->> 'description', coalesce(r.v ->> 'aggregation', 'sum'),
              coalesce((r.v ->> 'recurring')::boolean, false), r.v ->> 'field_name')
      on conflict (key) do update
        set name = excluded.name, unit = excluded.unit, description = excluded.description, aggregation = excluded.aggregation,
            recurring = excluded.recurring, field_name = excluded.field_name
        where (mt.name, mt.unit, mt.description, mt.aggregation, mt.recurring, mt.field_name)
              is distinct from (excluded.name, excluded.unit, excluded.description, excluded.aggregation, excluded.recurring,
                                excluded.field_name);
      n_meters := n_meters + case when found then 1 else 0 end;
    exception when integrity_constraint_violation or data_exception then
      get stacked diagnostics e_state = returned_sqlstate, e_message = message_text, e_constraint = constraint_name;
      perform private.catalog_refuse(format('meter "%s"', r.key), e_state, e_message, e_constraint);
    end;
  end loop;

  for r in select e.v, e.v ->> 'key' as key from jsonb_array_elements(doc -> 'features') as e (v) loop
    begin
      insert into catalog.features as ft (key, name, kind, meter_key, counts, description)
      values (r.key, r.v ->> 'name', r.v ->> 'kind', r.v ->> 'meter', r.v ->> 'counts', r.v ->> 'description')
      on conflict (key) do update
        set name = excluded.name, kind = excluded.kind, meter_key = excluded.meter_key,
            counts = excluded.counts, description = excluded.description
        where (ft.name, ft.kind, ft.meter_key, ft.counts, ft.description)
              is distinct from (excluded.name, excluded.kind, excluded.meter_key, excluded.counts, excluded.description);
      n_features := n_features + case when found then 1 else 0 end;
    exception when integrity_constraint_violation or data_exception then
      get stacked diagnostics e_state = returned_sqlstate, e_message = message_text, e_constraint = constraint_name;
      perform private.catalog_refuse(format('feature "%s"', r.key), e_state, e_message, e_constraint);
    end;
  end loop;

  -- A listed meter's aliases are exactly those the document gives it
  -- (after the features: an alias may not be a meter or feature key).
  if to_regclass('catalog.meter_aliases') is not null then
    delete from catalog.meter_aliases a
     using jsonb_array_elements(doc -> 'meters') as mt
     where a.meter_key = mt ->> 'key'
       and not coalesce(mt -> 'aliases', '[]') ? a.alias;
    for r in select mt ->> 'key' as key, al.alias
               from jsonb_array_elements(doc -> 'meters') as mt
              cross join lateral jsonb_array_elements_text(coalesce(mt -> 'aliases', '[]')) as al (alias) loop
      begin
        insert into catalog.meter_aliases as a (alias, meter_key) values (r.alias, r.key)
        on conflict (alias) do update set meter_key = excluded.meter_key where a.meter_key is distinct from excluded.meter_key;
        n_aliases := n_aliases + case when found then 1 else 0 end;
      exception when integrity_constraint_violation or data_exception then
        get stacked diagnostics e_state = returned_sqlstate, e_message = message_text, e_constraint = constraint_name;
        perform private.catalog_refuse(format('meter "%s", alias "%s"', r.key, r.alias), e_state, e_message, e_constraint);
      end;
    end loop;
  end if;

  for r in select e.v, e.v ->> 'key' as key from jsonb_array_elements(doc -> 'plans') as e (v) loop
    begin
      insert into catalog.plans as pl (key, name, price_minor, currency, billing_interval, rank, is_active, is_custom)
      values (r.key, r.v ->> 'name', (r.v ->> 'price_minor')::bigint, r.v ->> 'currency', coalesce(r.v ->> 'interval', 'month'),
              coalesce((r.v ->> 'rank')::int, 0), true, coalesce((r.v ->> 'custom')::boolean, false))
      on conflict (key) do update
        set name = excluded.name, price_minor = excluded.price_minor, currency = excluded.currency,
            billing_interval = excluded.billing_interval, rank = excluded.rank, is_active = true, is_custom = excluded.is_custom
        where (pl.name, pl.price_minor, pl.currency, pl.billing_interval, pl.rank, pl.is_active, pl.is_custom)
              is distinct from (excluded.name, excluded.price_minor, excluded.currency, excluded.billing_interval,
                                excluded.rank, true, excluded.is_custom);
      n_plans := n_plans + case when found then 1 else 0 end;
    exception when integrity_constraint_violation or data_exception then
      get stacked diagnostics e_state = returned_sqlstate, e_message = message_text, e_constraint = constraint_name;
      perform private.catalog_refuse(format('plan "%s"', r.key), e_state, e_message, e_constraint);
    end;
  end loop;

  with listed as (select p ->> 'key' as key from jsonb_array_elements(doc -> 'plans') as p),
       gone as (
         update catalog.plans pl set is_active = false
          where pl.is_active and pl.key not in (select key from listed)
          returning pl.key)
  select coalesce(array_agg(key order by key), '{}') into deactivated from gone;

  for r in select p ->> 'key' as plan, f.key as feature, f.value, ft.kind
             from jsonb_array_elements(doc -> 'plans') as p
            cross join lateral jsonb_each(coalesce(p -> 'features', '{}')) as f
             left join catalog.features ft on ft.key = f.key loop
    if r.kind is null then
      raise exception 'load_catalog: plan "%" names unknown feature "%"', r.plan, r.feature
        using errcode = '22023', hint = 'Declare it under "features" first; nothing was loaded.';
    end if;
    begin
      insert into catalog.plan_features as pf (plan_key, feature_key, feature_kind, limit_value, overage_unit_price_minor, flags)
      values (r.plan, r.feature, r.kind, (r.value ->> 'limit')::bigint, (r.value ->> 'overage_unit_price_minor')::bigint, r.value -> 'flags')
      on conflict (plan_key, feature_key) do update
        set feature_kind = excluded.feature_kind, limit_value = excluded.limit_value,
            overage_unit_price_minor = excluded.overage_unit_price_minor, flags = excluded.flags
        where (pf.feature_kind, pf.limit_value, pf.overage_unit_price_minor, pf.flags)
              is distinct from (excluded.feature_kind, excluded.limit_value, excluded.overage_unit_price_minor, excluded.flags);
      n_plan_features := n_plan_features + case when found then 1 else 0 end;
    exception when integrity_constraint_violation or data_exception then
      get stacked diagnostics e_state = returned_sqlstate, e_message = message_text, e_constraint = constraint_name;
      perform private.catalog_refuse(format('plan "%s", feature "%s"', r.plan, r.feature), e_state, e_message, e_constraint);
    end;
  end loop;

  delete from catalog.plan_features pf
   where pf.plan_key in (select p ->> 'key' from jsonb_array_elements(doc -> 'plans') as p)
     and not exists (select from jsonb_array_elements(doc -> 'plans') as p
                      where p ->> 'key' = pf.plan_key and (p -> 'features') ? pf.feature_key);
  get diagnostics n_removed = row_count;

  -- The wide usage view (0015) follows the meters and limits just loaded.
  if to_regprocedure('private.build_usage_summary_view()') is not null then
    perform private.build_usage_summary_view();
  end if;

  return jsonb_build_object('meters', n_meters, 'meter_aliases', n_aliases, 'features', n_features, 'plans', n_plans,
                            'plan_features', n_plan_features, 'plan_features_removed', n_removed,
                            'plans_deactivated', to_jsonb(deactivated));
end
$fn$;
comment on function private.load_catalog is 'Upserts a catalog document (seeds/catalog.schema.json); deactivates plans left out; rebuilds organization_usage_summary. All or nothing; names the item a table refuses. Idempotent.';
{{ m.private_grants('load_catalog', 'service_role') }}

{{ m.updated_at('catalog.plans') }}
