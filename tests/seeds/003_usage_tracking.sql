-- Seed 003 (organization usage tracking): its SQL, run as written against a
-- migrated, seeded database, through PostgREST's role switch.
--
-- Substitutions, and nothing else:
--   * schema qualification: organization_usage_summary -> public.organization_usage_summary,
--     subscription_history -> billing.subscription_history, plans -> catalog.plans,
--     organizations -> tenancy.organizations
--   * placeholders -> real ids: 'org-uuid' / 'uuid' -> :'org' (psql variable),
--     'basic-plan-id' -> :'basic_id', 'growth-plan-id' -> :'growth_id', 'user-uuid' -> :'sam'
--   * '2025-11-01'::DATE (the month the seed was written) -> :'month'::DATE,
--     the first day of the current month: the organization did not exist in 2025
--   * a query's result is kept with "create temp table <name> as" in front
--     of it, so the assertions below can read it
-- The seed's meters are in a test catalog loaded first, as `tenantdb seed
-- --catalog` would: venues, staff, bookings with the limits max_venues,
-- max_staff, max_bookings_per_month (plans "free" named Basic, and Growth).
begin;
\ir ../sql/_helpers.psql
select plan(25);

select private.load_catalog($doc${
  "meters": [{"key": "venues", "name": "Venues", "unit": "venue"},
             {"key": "staff", "name": "Staff", "unit": "person"},
             {"key": "bookings", "name": "Bookings", "unit": "booking"}],
  "features": [{"key": "max_venues", "name": "Venues", "kind": "limit", "meter": "venues"},
               {"key": "max_staff", "name": "Staff", "kind": "limit", "meter": "staff"},
               {"key": "max_bookings_per_month", "name": "Bookings per month", "kind": "limit", "meter": "bookings"}],
  "plans": [{"key": "free", "name": "Basic", "price_minor": 0, "currency": "USD", "rank": 0,
             "features": {"max_venues": {"limit": 1}, "max_staff": {"limit": 3}, "max_bookings_per_month": {"limit": 100}}},
            {"key": "growth", "name": "Growth", "price_minor": 29900, "currency": "USD", "rank": 1,
             "features": {"max_venues": {"limit": 10}, "max_staff": {"limit": 20}, "max_bookings_per_month": {"limit": 1000}}}]
}$doc$::jsonb) \gset
select tests.user('sam@venue.test') as sam \gset
select tests.user('bea@venue.test') as bea \gset
select tests.user('cy@venue.test') as cy \gset
select tests.personal_org(:'sam') as org \gset
select tests.personal_org(:'bea') as org_b \gset
select tests.personal_org(:'cy') as org_c \gset
select id as basic_id from catalog.plans where key = 'free' \gset
select id as growth_id from catalog.plans where key = 'growth' \gset
select date_trunc('month', current_date)::date as month \gset

select bag_eq($$select column_name::text from information_schema.columns
               where table_schema = 'public' and table_name = 'organization_usage_summary'
                 and column_name ~ '^(venues|staff|bookings)_|_(venues|staff|bookings_per_month)$'$$,
  $$values ('venues_count'), ('max_venues'), ('venues_utilization_pct'), ('staff_count'), ('max_staff'),
           ('staff_utilization_pct'), ('bookings_count'), ('max_bookings_per_month'), ('bookings_utilization_pct')$$,
  'the wide view has the seed''s columns for the catalog''s meters and limits');

-- Usage of the month: Sam 90 of 100 bookings, Bea 120 (over), Cy 10; 1 venue each.
select count(*) from (
  select record_usage(o, 'bookings', n, 'b-' || o) from (values (:'org'::uuid, 90), (:'org_b'::uuid, 120), (:'org_c'::uuid, 10)) v (o, n)
  union all
  select record_usage(o, 'venues', 1, 'v-' || o) from (values (:'org'::uuid), (:'org_b'::uuid), (:'org_c'::uuid)) v (o)) x \gset

-- "Record usage for current month", as Sam (billing.view in his organization).
select tests.act_as(:'sam');
SELECT record_organization_usage(:'org');
-- "Record usage for specific month"
SELECT record_organization_usage(
  :'org',
  :'month'::DATE
);
select is((select period_end from usage.organization_usage where organization_id = :'org' and period_start = :'month'),
  (:'month'::date + interval '1 month - 1 day')::date, 'period_end is the last day of the month, as the seed shows');

-- "Record upgrade" and "Record cancellation", as the back end.
reset role;
select tests.act_as_service();
create temp table upgrade as
SELECT record_subscription_change(
  :'org',
  :'basic_id',
  :'growth_id',
  'upgrade',
  'evt_xxx',
  299.00,
  :'sam'
);
create temp table cancellation as
SELECT record_subscription_change(
  :'org',
  :'growth_id',
  NULL,
  'cancelled',
  'evt_xxx',
  NULL,
  :'sam'
);
select isnt((select record_subscription_change from upgrade), null, 'record_subscription_change returns the history id');

-- The analytics view, as Sam.
reset role;
select tests.act_as(:'sam');
create temp table own_summary as
SELECT * FROM public.organization_usage_summary
WHERE organization_id = :'org'
ORDER BY period_start DESC;
select is((select count(*)::int from own_summary), 1, 'the summary has one row per organization and period');
select is((select bookings_count from own_summary), 90::bigint, 'bookings_count');
select is((select max_bookings_per_month from own_summary), 100::bigint, 'max_bookings_per_month: the plan''s limit');
select is((select bookings_utilization_pct from own_summary), 90.00, 'bookings_utilization_pct');
select is((select venues_utilization_pct from own_summary), 100.00, 'venues_utilization_pct (1 of 1)');
select is((select plan_name from own_summary), 'Basic', 'plan_name');
select is((select has_exceeded_limits from own_summary), false, 'Sam is within his limits');

-- Bea cannot read Sam's row through the same query.
reset role;
select tests.act_as(:'bea');
create temp table bea_reads_sam as
SELECT * FROM public.organization_usage_summary
WHERE organization_id = :'org'
ORDER BY period_start DESC;
select is((select count(*)::int from bea_reads_sam), 0, 'another organization''s member reads none of it');

-- Use case 4 (the cron job), as the back end.
reset role;
select tests.act_as_service();
create temp table uc4 as
SELECT record_organization_usage(id)
FROM tenancy.organizations
WHERE status = 'active';
select is((select count(*)::int from uc4), (select count(*)::int from tenancy.organizations where status = 'active'),
  'use case 4 snapshots every active organization');

-- Use case 1, for all organizations (the back end).
create temp table uc1 as
SELECT * FROM public.organization_usage_summary
WHERE period_start = DATE_TRUNC('month', CURRENT_DATE)::DATE
ORDER BY has_exceeded_limits DESC, bookings_count DESC;
select is((select organization_id from uc1 limit 1), :'org_b'::uuid, 'use case 1: the organization over its limits comes first');
select is((select has_exceeded_limits from uc1 where organization_id = :'org_b'), true, 'Bea has exceeded her limits');
select is((select exceeded_limits_details -> 'max_bookings_per_month' from uc1 where organization_id = :'org_b'),
  '{"limit": 100, "actual": 120, "exceeded_by": 20}'::jsonb, 'exceeded_limits_details says by how much');
select ok((select count(*) from uc1) >= 3, 'use case 1 lists the month of every snapshotted organization');

-- Use case 2: near their limits.
create temp table uc2 as
SELECT 
  organization_name,
  plan_name,
  bookings_utilization_pct
FROM public.organization_usage_summary
WHERE bookings_utilization_pct > 80
AND period_start = DATE_TRUNC('month', CURRENT_DATE)::DATE;
-- Sam's recorded cancellation canceled his subscription (record_subscription_change
-- makes the change it records): use case 4's snapshot of him has no plan, no limit.
select bag_eq('select bookings_utilization_pct from uc2', $$values (120.00)$$,
  'use case 2 finds Bea above 80%, not Cy at 10% nor Sam (canceled: no limit left)');

-- Use case 3: the plan changes of an organization, as its owner.
reset role;
select tests.act_as(:'sam');
create temp table uc3 as
SELECT 
  sh.*,
  op.name as old_plan_name,
  np.name as new_plan_name
FROM billing.subscription_history sh
LEFT JOIN catalog.plans op ON sh.old_plan_id = op.id
LEFT JOIN catalog.plans np ON sh.new_plan_id = np.id
WHERE sh.organization_id = :'org'
ORDER BY sh.effective_date DESC;
select ok(exists (select from uc3 where change_type = 'upgrade' and old_plan_name = 'Basic' and new_plan_name = 'Growth'),
  'use case 3 names the plans of the upgrade through their ids');
select ok(exists (select from uc3 where change_type = 'cancelled' and old_plan_name = 'Growth' and new_plan_name is null),
  'use case 3 shows the cancellation');
select is((select amount_paid_minor from uc3 where change_type = 'upgrade'), 29900::bigint,
  'the seed''s 299.00 is stored as 29900 minor units');
select is((select provider_event_id from uc3 where change_type = 'upgrade'), 'evt_xxx', 'the seed''s stripe_event_id is provider_event_id');
select ok(exists (select from uc3 where change_type = 'created' and new_plan_id = :'basic_id'),
  'history written by the subscription trigger carries plan ids too');

reset role;
select tests.act_as(:'bea');
select is((select count(*)::int from billing.subscription_history sh where sh.organization_id = :'org'), 0,
  'another organization''s member reads none of its history');

-- plan_features (seed 001) and rollups stamp updated_at.
reset role;
update catalog.plan_features set updated_at = '2000-01-01' where plan_key = 'growth' and feature_key = 'max_venues';
update catalog.plan_features set limit_value = 11 where plan_key = 'growth' and feature_key = 'max_venues';
select ok((select updated_at > '2000-01-02' from catalog.plan_features where plan_key = 'growth' and feature_key = 'max_venues'),
  'an update of plan_features stamps updated_at');
insert into usage.rollups (organization_id, meter_key, period_type, period_start, quantity, event_count, updated_at)
values (:'org', 'bookings', 'daily', current_date, 1, 1, '2000-01-01');
update usage.rollups set quantity = 2 where organization_id = :'org' and meter_key = 'bookings' and period_type = 'daily';
select ok((select updated_at > '2000-01-02' from usage.rollups where organization_id = :'org' and meter_key = 'bookings' and period_type = 'daily'),
  'an update of a usage rollup stamps updated_at');

select * from finish();
rollback;
