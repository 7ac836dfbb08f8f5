-- projects (issue 12): the gate and meter of a counted tenant table.
{% import 'sql/macros.sql' as m with context %}

-- private.gate_and_meter() -> trigger
-- Deferred constraint trigger (macro metered) AFTER INSERT or DELETE on a
-- tenant table counted by a plan limit; tg_argv[0] is the feature (e.g.
-- max_projects), whose meter counts live rows (aggregation 'live_count'). At commit:
--   insert: records one usage event (key <table>:<id>), then adds one to
--     the organization's live count — the row update is the lock that
--     counts concurrent transactions one after the other — and refuses
--     (54000) when the count passes the limit of the live plan and the
--     plan bills no overage (a feature missing from the plan, or no live
--     plan, allows none); the period's highest count is kept in
--     usage.counters (slot 0), which the invoice bills;
--   delete: gives the slot back (nothing to do when the organization
--     itself was deleted: its counts went with it);
--   update: refuses (23514, <table>_organization_fixed) moving a row to
--     another organization (it would leave one count and skip the other's
--     limit).
-- Everything that does not need the count runs before it, so the row is
-- held only for the count, the period's high mark and the commit. Binds
-- every client, the back end included. Refuses (22023) a feature without
-- a live_count meter (a catalog mistake), and nothing else.
create or replace function private.gate_and_meter()
  returns trigger
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  feature catalog.features;
  org uuid := coalesce(new.organization_id, old.organization_id);
  delta integer := case when tg_op = 'INSERT' then 1 else -1 end;  -- (UPDATE returns before using it)
  plan catalog.plans;
  pf catalog.plan_features;
  counted bigint;
  period date;
begin
  if tg_op = 'UPDATE' then
    if new.organization_id is distinct from old.organization_id then
      raise exception '%.%: a counted row does not move to another organization', tg_table_schema, tg_table_name
        using errcode = '23514', constraint = tg_table_name || '_organization_fixed';
    end if;
    return null;
  end if;
  if tg_op = 'DELETE' and not exists (select from tenancy.organizations o where o.id = org) then
    return null;
  end if;
  select * into feature from catalog.features f where f.key = tg_argv[0];
  if feature.meter_key is null
     or not exists (select from catalog.meters mt where mt.key = feature.meter_key and mt.aggregation = 'live_count') then
    raise exception 'gate_and_meter on %.%: feature % has no live_count meter', tg_table_schema, tg_table_name, tg_argv[0]
      using errcode = '22023', hint = 'Declare the feature with a meter of "aggregation": "live_count" in the catalog.';
  end if;
  if tg_op = 'INSERT' then
    plan := private.live_plan(org);
    select * into pf from catalog.plan_features p where p.plan_key = plan.key and p.feature_key = feature.key;
    perform private.usage_append(org, feature.meter_key, 1, format('%s.%s:%s', tg_table_schema, tg_table_name, new.id), now(), '{}');
  end if;
  if exists (select from billing.settings s where s.organization_id = org) then
    select p.start_date into period from private.billing_period(org, now()) p;
  else
    period := date_trunc('month', now() at time zone 'UTC')::date;
  end if;
  insert into usage.live_counts as l (organization_id, meter_key, quantity)
  values (org, feature.meter_key, greatest(delta, 0))
  on conflict on constraint live_counts_pkey
  do update set quantity = greatest(l.quantity + delta, 0), updated_at = now()
  returning l.quantity into counted;
  if tg_op = 'INSERT' and (pf.limit_value is null or (pf.limit_value >= 0 and counted > pf.limit_value))
     and pf.overage_unit_price_minor is null then
    raise exception 'limit % reached: plan % allows % %, organization % has %', feature.key, coalesce(plan.key, '(none)'),
      coalesce(pf.limit_value, 0), feature.meter_key, org, counted - 1
      using errcode = '54000', hint = 'Upgrade the plan, or delete one first.';
  end if;
  insert into usage.counters as c (organization_id, meter_key, period_start, slot, quantity, event_count)
  values (org, feature.meter_key, period, 0, counted - least(delta, 0), 1)
  on conflict on constraint counters_pkey
  do update set quantity = greatest(c.quantity, excluded.quantity), event_count = c.event_count + 1, updated_at = now();
  return null;
end
$fn$;
comment on function private.gate_and_meter is 'Constraint trigger: a counted tenant table''s plan limit at commit, its usage event, live count and the period''s highest count.';
revoke all on function private.gate_and_meter from public, anon;

{{ m.metered('app.projects', 'max_projects') }}
{{ m.updated_at('app.projects') }}
