-- catalog and usage: feature gates, record_usage, rollups, summaries.
begin;
\ir _helpers.psql
select plan(30);

select tests.user('una@u.test') as una \gset
select tests.user('out@o.test') as outsider \gset
select tests.personal_org(:'una') as org \gset

-- The seeded catalog: 4 plans x 10 features (seed 001's nine and max_projects).
select is((select count(*)::int from catalog.plan_features), 40, 'the seed has 40 plan features');
select is((select plan_key from billing.subscriptions where organization_id = :'org' and status <> 'canceled'), 'free',
  'signup gives the personal organization the free plan');

-- check_feature_access
select tests.act_as(:'una');
select is((check_feature_access(:'una', 'max_records', :'org') ->> 'limit')::int, 100, 'the free plan allows 100 records');
select is(check_feature_access(:'una', 'max_records', :'org') -> 'allowed', 'true'::jsonb, 'a fresh organization may add a record');
select is((check_feature_access(:'una', 'max_seats', :'org') ->> 'used')::int, 1, 'the owner uses one seat');
select is(check_feature_access(:'una', 'features', :'org') #> '{flags,sso}', 'false'::jsonb, 'the free plan has no SSO');
select throws_ok(format($$select check_feature_access(%L, 'max_widgets', %L)$$, :'una', :'org'), '22023',
  'check_feature_access: unknown feature key "max_widgets"', 'an unknown feature key is an error, not a null');
select throws_ok(format($$select check_feature_access(%L, 'max_records', %L)$$, :'outsider', :'org'), '42501', null,
  'nobody checks access for another user');
reset role;
select tests.act_as(:'outsider');
select throws_ok(format($$select check_feature_access(%L, 'max_records', %L)$$, :'outsider', :'org'), '42501', null,
  'a non-member is refused');
reset role;

-- record_usage
select tests.act_as(:'una');
select is((select duplicate from record_usage(:'org', 'record_created', 60, 'batch-1')), false, 'a new key is recorded');
select is((select duplicate from record_usage(:'org', 'record_created', 60, 'batch-1')), true, 'the same key again is a duplicate');
select is((check_feature_access(:'una', 'max_records', :'org') ->> 'used')::int, 60, 'the duplicate was not counted');
select lives_ok(format($$select record_usage(%L, 'record_created', 50, 'batch-2')$$, :'org'), 'a second batch');
select is(check_feature_access(:'una', 'max_records', :'org') -> 'allowed', 'false'::jsonb,
  'over the limit without an overage price: not allowed');
select is((check_feature_access(:'una', 'max_records', :'org') ->> 'remaining')::int, 0, 'nothing remains');
select throws_ok(format($$select record_usage(%L, 'record_created', 0, 'zero')$$, :'org'), '22023', null, 'a zero quantity is refused');
select throws_ok(format($$select record_usage(%L, 'api_call', -5, 'neg')$$, :'org'), '22023', null,
  'a negative quantity is refused by a per-period sum (only a running total such as records takes units back)');
select throws_ok(format($$select record_usage(%L, 'teleports', 1, 'x')$$, :'org'), '22023', 'record_usage: unknown meter "teleports": not a meter key, a meter alias or a feature with a meter',
  'an unknown meter is refused');
select throws_ok(format($$select record_usage(%L, 'api_call', 1, 'old', now() - interval '400 days')$$, :'org'), '22023', null,
  'an event a year old is refused');
select throws_ok(format($$select record_usage(%L, 'api_call', 1, 'future', now() + interval '40 days')$$, :'org'), '22023', null,
  'an event next month is refused');
select is((select count(*)::int from usage.events where idempotency_key in ('zero', 'neg', 'x', 'old', 'future')), 0,
  'refused events wrote nothing');
reset role;
select tests.act_as(:'outsider');
select throws_ok(format($$select record_usage(%L, 'api_call', 1, 'evil')$$, :'org'), '42501', null, 'a non-member cannot record usage');
reset role;
select tests.act_as_anon();
select throws_ok(format($$select record_usage(%L, 'api_call', 1, 'anon')$$, :'org'), '42501', null, 'anon cannot record usage');
reset role;

-- rollups, summaries, snapshots
select is(aggregate_usage('daily', now() - interval '1 day', now() + interval '1 day'), 1, 'one daily rollup written');
select is(aggregate_usage('daily', now() - interval '1 day', now() + interval '1 day'), 0, 're-running the range changes nothing');
select is((select quantity::int from usage.rollups where organization_id = :'org' and period_type = 'daily'), 110,
  'the rollup holds the day''s total');
select throws_ok($$select aggregate_usage('hourly', now() - interval '1 day', now())$$, '22023', null, 'an unknown period type is refused');
select tests.act_as(:'una');
select record_organization_usage(:'org') as snap \gset
select is((select exceeded_limits_details -> 'max_records' from usage.organization_usage where id = :'snap'),
  '{"limit": 100, "actual": 110, "exceeded_by": 10}'::jsonb, 'the snapshot says by how much the limit was exceeded');
select is(record_organization_usage(:'org'), :'snap'::uuid, 'a second snapshot of the period updates the same row');
select is((select utilization_pct from organization_feature_usage where organization_id = :'org' and feature_key = 'max_records'),
  110.00, 'utilization is a percentage of the limit');
reset role;

select * from finish();
rollback;
