-- 0015 seed contract: meter aliases and feature keys in record_usage, the
-- catalog loader's aliases and wide view, subscription_history's plan ids,
-- and the refusals of each.
begin;
\ir _helpers.psql
select plan(24);

select tests.user('una@sc.test') as una \gset
select tests.user('out@sc.test') as outsider \gset
select tests.personal_org(:'una') as org \gset

-- record_usage: a meter key, an alias or a feature key, stored under the meter.
select tests.act_as(:'una');
select lives_ok(format($$select record_usage(%L, 'api_calls', 2, 'alias-1')$$, :'org'), 'an alias is a meter name (seed 000''s api_calls)');
select lives_ok(format($$select record_usage(%L, 'max_api_calls_per_month', 3, 'feature-1')$$, :'org'),
  'a feature key names its meter (check_feature_access''s key works here too)');
select lives_ok(format($$select record_usage(p_organization_id => %L, p_meter_key => 'api_call', p_quantity => 5, p_idempotency_key => 'named-1')$$, :'org'),
  'named call with the p_ names');
reset role;
select bag_eq(format($$select meter_key, quantity from usage.events where organization_id = %L$$, :'org'),
  $$values ('api_call', 2::bigint), ('api_call', 3::bigint), ('api_call', 5::bigint)$$, 'all three are stored under the meter key');
select is((check_feature_access(:'una', 'max_api_calls_per_month', :'org') ->> 'used')::int, 10,
  'check_feature_access counts usage recorded under any of the names');
select tests.act_as(:'una');
select throws_ok(format($$select record_usage(%L, 'max_seats', 1, 'seats-1')$$, :'org'), '22023',
  'record_usage: unknown meter "max_seats": not a meter key, a meter alias or a feature with a meter',
  'a feature without a meter (seats are counted, not recorded) is refused');
select throws_ok(format($$select record_usage(%L, 'warp_drive', 1, 'w-1')$$, :'org'), '22023', null, 'a key that is nothing is refused');
select results_eq(format($$select count(*)::int from record_usage_batch(%L, '[{"meter_key": "api_calls", "quantity": 1, "idempotency_key": "b-1"},
                                                                        {"feature_key": "max_api_calls_per_month", "quantity": 1, "idempotency_key": "b-2"}]')$$, :'org'),
  $$values (2)$$, 'the batch takes meter_key or feature_key, each a key, alias or feature');
select throws_ok(format($$select record_usage_batch(%L, '[{"meter_key": "warp_drive", "quantity": 1, "idempotency_key": "b-3"}]')$$, :'org'),
  '22023', 'record_usage_batch: item 1 unknown meter "warp_drive"', 'the batch names the unknown item');
reset role;

-- Aliases: not a key, loaded by the catalog document, read by signed-in users only.
select throws_ok($$insert into catalog.meter_aliases (alias, meter_key) values ('record_created', 'api_call')$$, '22023', null,
  'an alias may not be another meter''s key');
select throws_ok($$insert into catalog.meter_aliases (alias, meter_key) values ('max_records', 'api_call')$$, '22023', null,
  'an alias may not be a feature key');
select throws_ok($$insert into catalog.meter_aliases (alias, meter_key) values ('Api Calls', 'api_call')$$, '23514', null,
  'an alias is a plain lower-case name (meter_aliases_alias_format)');
select throws_ok($$insert into catalog.meters (key, name, unit) values ('api_calls', 'Shadow', 'call')$$, '22023', null,
  'a new meter may not take an alias''s name (catalog_names_distinct)');
select throws_ok($$insert into catalog.features (key, name, kind, meter_key) values ('api_calls', 'Shadow', 'limit', 'api_call')$$, '22023', null,
  'a new feature may not take an alias''s name');
select tests.act_as_anon();
select throws_ok('select count(*) from catalog.meter_aliases', '42501', null, 'anon cannot read the aliases');
reset role;

-- The wide view: a collision between generated names is refused, nothing changes.
select throws_ok($$select private.load_catalog('{"meters": [{"key": "api_call", "name": "API calls"}],
    "features": [{"key": "api_call_count", "name": "Clash", "kind": "limit", "meter": "api_call"}],
    "plans": [{"key": "free", "name": "Free", "price_minor": 0, "currency": "USD", "features": {"api_call_count": {"limit": 1}}}]}')$$,
  '22023', 'build_usage_summary_view: the catalog makes two columns named "api_call_count"',
  'a feature named like another meter''s count column is refused');
select has_column('public', 'organization_usage_summary', 'api_call_count', 'the wide view is still there after the refusal');
select has_column('public', 'organization_usage_summary', 'max_api_calls_per_month', 'with a column per limit');
select throws_ok(format($$select private.load_catalog('{"meters": [{"key": "%s", "name": "Long"}],
    "features": [{"key": "%sa", "name": "A", "kind": "limit", "meter": "%s"}, {"key": "%sb", "name": "B", "kind": "limit", "meter": "%s"}],
    "plans": [{"key": "free", "name": "Free", "price_minor": 0, "currency": "USD", "features": {}}]}')$$,
    repeat('m', 70), repeat('f', 70), repeat('m', 70), repeat('f', 70), repeat('m', 70)),
  '22023', null, 'two names Postgres would cut to the same 63 characters are refused');
create view public.my_usage_report as select organization_id, period_start from public.organization_usage_summary;
select lives_ok($$select private.build_usage_summary_view()$$, 'rebuilding with an unchanged catalog leaves the view (and views on it) alone');
drop view public.my_usage_report;

-- subscription_history: ids and keys in step.
select isnt((select new_plan_id from billing.subscription_history where organization_id = :'org' and change_type = 'created'), null,
  'the signup''s history row carries the plan id');
select throws_ok(format($$insert into billing.subscription_history (organization_id, new_plan_key, new_plan_id, change_type)
                         values (%L, 'free', (select id from catalog.plans where key = 'pro'), 'upgrade')$$, :'org'),
  '22023', 'subscription_history: a plan id and a plan key name different plans', 'a key and an id of different plans are refused');

-- one_off_payments.metadata is a JSON object.
select throws_ok(format($$insert into billing.one_off_payments (organization_id, provider, provider_payment_id, amount_minor, currency, reason, metadata)
                         values (%L, 'stripe', 'pi_1', 100, 'USD', 'test', '[1]')$$, :'org'),
  '23514', null, 'payment metadata must be an object (one_off_payments_metadata_is_object)');

-- organization_usage.period_end is inclusive and not before the start.
select throws_ok(format($$insert into usage.organization_usage (organization_id, period_start, period_end) values (%L, '2026-11-01', '2026-10-31')$$, :'org'),
  '23514', null, 'a period that ends before it starts is refused (organization_usage_period_end_inclusive)');

select * from finish();
rollback;
