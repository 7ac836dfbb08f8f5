-- meter aggregations (issue 19): each meter's usage adds up as its
-- catalog aggregation says, in check_feature_access, the summaries and the
-- overage fees. The default catalog: records are a running total, storage
-- the latest size, MAU distinct users.
begin;
\ir _helpers.psql
select plan(43);

select tests.user('mia@m.test') as mia \gset
select tests.user('ned@n.test') as ned \gset
select tests.user('out@o.test') as outsider \gset
select tests.personal_org(:'mia') as org \gset
select tests.personal_org(:'outsider') as other \gset
-- Times in this month's first minutes and in the previous month: never
-- more than an hour ahead, never before the accepted window.
select date_trunc('month', now()) as m0, date_trunc('month', now()) - interval '5 days' as prev \gset

-- The default catalog's aggregations.
select is((select array_agg(key || ':' || aggregation || case when (to_jsonb(m) ->> 'recurring')::boolean then '+recurring' else '' end
                            || coalesce('(' || (to_jsonb(m) ->> 'field_name') || ')', '') order by key)
             from catalog.meters m where key in ('record_created', 'storage_used', 'user_active', 'projects', 'api_call')),
  array['api_call:sum', 'projects:live_count', 'record_created:sum+recurring', 'storage_used:latest', 'user_active:unique_count(user_id)'],
  'records are a running total, storage the latest size, MAU distinct users, projects live rows');

-- Records: a stock that does not reset each period.
select tests.act_as(:'mia');
select lives_ok(format($$select record_usage(%L, 'record_created', 60, 'rec-1', %L)$$, :'org', :'prev'), 'records made last month');
select lives_ok(format($$select record_usage(%L, 'record_created', 30, 'rec-2', %L)$$, :'org', :'m0'), 'records made this month');
select is((check_feature_access(:'mia', 'max_records', :'org') ->> 'used')::int, 90,
  'max_records counts the records kept, also those of last month (100 records means 100 in total)');
select throws_ok(format($$select record_usage(%L, 'record_created', -25, 'rec-del-m')$$, :'org'), '42501',
  'record_usage: meter record_created takes gauge readings and give-backs from the back end only',
  'a member gives no records back (it would lower what the organization is billed)');
reset role;
select tests.act_as_service();
select lives_ok(format($$select record_usage(%L, 'record_created', -25, 'rec-del-1')$$, :'org'), 'a negative quantity gives deleted records back');
select is((check_feature_access(:'mia', 'max_records', :'org') ->> 'used')::int, 65, 'the given back records no longer count');
select throws_ok(format($$select record_usage(%L, 'record_created', -66, 'rec-del-2')$$, :'org'), '22023',
  format('record_usage: meter record_created would go below zero: organization %s has 65, the event takes 66', :'org'),
  'giving back more records than kept is refused');
select is((select count(*)::int from usage.events where idempotency_key = 'rec-del-2'), 0, '... and writes nothing');
select throws_ok(format($$select record_usage(%L, 'record_created', 0, 'rec-zero')$$, :'org'), '22023', null,
  'a running total refuses a zero quantity');
select lives_ok(format($$select record_usage(%L, 'record_created', -25, 'rec-del-1')$$, :'org'), 'a give-back replayed');
select is((check_feature_access(:'mia', 'max_records', :'org') ->> 'used')::int, 65, '... is a duplicate: the total is unchanged');

-- Storage: the latest size reported (by occurred_at), not the sum of reports.
reset role;
select tests.act_as(:'mia');
select throws_ok(format($$select record_usage(%L, 'storage_used', 0, 'st-member')$$, :'org'), '42501',
  'record_usage: meter storage_used takes gauge readings and give-backs from the back end only',
  'a member reports no gauge reading');
select throws_ok(format($$select record_usage_batch(%L, '[{"meter_key": "api_call", "quantity": 1, "idempotency_key": "b-ok"}, {"meter_key": "storage_used", "quantity": 0, "idempotency_key": "b-st"}]')$$, :'org'),
  '42501', 'record_usage_batch: item 2 meter storage_used takes gauge readings and give-backs from the back end only',
  '... nor in a batch, which then writes nothing');
reset role;
select tests.act_as_service();
select lives_ok(format($$select record_usage(%L, 'storage_used', 7, 'st-prev', %L)$$, :'org', :'prev'), 'a size reported last month');
select is((check_feature_access(:'mia', 'max_storage_gb', :'org') ->> 'used')::int, 7,
  'without a report this month, storage is the last size reported');
select lives_ok(format($$select record_usage(%L, 'storage_used', 5, 'st-1', %L)$$, :'org', (:'m0'::timestamptz + interval '1 minute')), 'size 5');
select lives_ok(format($$select record_usage(%L, 'storage_used', 3, 'st-2', %L)$$, :'org', (:'m0'::timestamptz + interval '3 minutes')), 'size 3, later');
select is((check_feature_access(:'mia', 'max_storage_gb', :'org') ->> 'used')::int, 3, 'storage is the latest size, not 5 + 3');
select lives_ok(format($$select record_usage(%L, 'storage_used', 9, 'st-late', %L)$$, :'org', (:'m0'::timestamptz + interval '2 minutes')),
  'a late report of an earlier moment');
select is((check_feature_access(:'mia', 'max_storage_gb', :'org') ->> 'used')::int, 3, 'a late report of an earlier moment does not replace the latest');
select lives_ok(format($$select record_usage(%L, 'storage_used', 0, 'st-empty', %L)$$, :'org', (:'m0'::timestamptz + interval '4 minutes')),
  'a gauge may report zero');
select is((check_feature_access(:'mia', 'max_storage_gb', :'org') ->> 'used')::int, 0, '... and then uses nothing');
select throws_ok(format($$select record_usage(%L, 'storage_used', -1, 'st-neg')$$, :'org'), '22023', null, 'a gauge refuses a negative size');

-- MAU: distinct users of the period.
reset role;
select tests.act_as(:'mia');
select lives_ok(format($$select record_usage(%L, 'user_active', 1, 'mau-' || g, %L, jsonb_build_object('user_id', %L)) from generate_series(1, 3) g$$,
                       :'org', :'m0', :'ned'), 'one user active three times');
select lives_ok(format($$select record_usage(%L, 'user_active', 1, 'mau-mia', %L)$$, :'org', :'m0'),
  'the signed-in user, without metadata, is the active user');
select is((check_feature_access(:'mia', 'max_mau', :'org') ->> 'used')::int, 2, 'max_mau counts distinct users, not events');
reset role;
select tests.act_as_service();
select throws_ok(format($$select record_usage(%L, 'user_active', 1, 'mau-nobody')$$, :'org'), '22023',
  'record_usage: meter user_active counts distinct metadata.user_id, and the event has none',
  'the back end must say which user was active');
select throws_ok(format($$select record_usage_batch(%L, '[{"meter_key": "user_active", "quantity": 1, "idempotency_key": "mau-b0"}]')$$, :'org'),
  '22023', 'record_usage_batch: item 1 meter user_active counts distinct metadata.user_id, and the item has none',
  '... also in a batch');
-- The batch follows the same aggregations.
select jsonb_build_array(
    jsonb_build_object('meter_key', 'user_active', 'quantity', 1, 'idempotency_key', 'mau-b1', 'occurred_at', :'m0', 'metadata', jsonb_build_object('user_id', :'ned')),
    jsonb_build_object('meter_key', 'user_active', 'quantity', 1, 'idempotency_key', 'mau-b2', 'occurred_at', :'m0', 'metadata', jsonb_build_object('user_id', 'u-3')),
    jsonb_build_object('meter_key', 'user_active', 'quantity', 1, 'idempotency_key', 'mau-b3', 'occurred_at', :'m0', 'metadata', jsonb_build_object('user_id', 'u-3')),
    jsonb_build_object('meter_key', 'storage_used', 'quantity', 4, 'idempotency_key', 'st-b1', 'occurred_at', :'m0'::timestamptz + interval '5 minutes'),
    jsonb_build_object('meter_key', 'storage_used', 'quantity', 8, 'idempotency_key', 'st-b2', 'occurred_at', :'m0'::timestamptz + interval '30 seconds'),
    jsonb_build_object('meter_key', 'record_created', 'quantity', -5, 'idempotency_key', 'rec-b1'),
    jsonb_build_object('meter_key', 'api_call', 'quantity', 2, 'idempotency_key', 'api-b1')) as batch \gset
select lives_ok(format($$select record_usage_batch(%L, %L)$$, :'org', :'batch'),
  'a batch of MAU, storage, records and API calls is recorded');
select is((check_feature_access(:'mia', 'max_mau', :'org') ->> 'used')::int, 3, 'the batch adds one new user (u-3 twice, ned again)');
select is((check_feature_access(:'mia', 'max_storage_gb', :'org') ->> 'used')::int, 4, 'the batch''s latest size, not its earlier one');
select is((check_feature_access(:'mia', 'max_records', :'org') ->> 'used')::int, 60, 'the batch gave 5 records back');
select throws_ok(format($$select record_usage_batch(%L, '[{"meter_key": "record_created", "quantity": -61, "idempotency_key": "rec-b2"}]')$$, :'org'),
  '22023', null, 'a batch may not take a running total below zero');

-- Summaries and overage fees follow the aggregation: pro includes 10 GB at 50 per GB over.
update billing.subscriptions set plan_key = 'pro' where organization_id = :'org' and status <> 'canceled';
select tests.act_as_service();
select lives_ok(format($$select record_usage(%L, 'storage_used', 12, 'st-pro', %L)$$, :'org', (:'m0'::timestamptz + interval '10 minutes')), 'storage 12 GB');
select lives_ok(format($$select record_organization_usage(%L)$$, :'org'), 'the period is summarized');
select is((select units_over::int || ' x ' || amount_minor from usage.overage_fees where organization_id = :'org' and feature_key = 'max_storage_gb'),
  '2 x 100', 'the overage bills the 2 GB over the current size, not every report of the month added up');
select is((select (usage ->> 'max_mau')::int from usage.organization_usage where organization_id = :'org'), 3,
  'the snapshot counts distinct users');
reset role;

-- Isolation: a member reads their organization's distinct values, another organization's member none.
select tests.act_as(:'mia');
select is((select count(*)::int from usage.unique_values where organization_id = :'org' and meter_key = 'user_active'), 3,
  'a member reads the distinct values of their organization');
reset role;
select tests.act_as(:'outsider');
select is((select count(*)::int from usage.unique_values where organization_id = :'org'), 0, 'an outsider reads no distinct values of another organization');
reset role;

select tests.act_as_service();
-- count and max, for a team's own meters.
insert into catalog.meters (key, name, aggregation) values ('report_run', 'Report runs', 'count'), ('peak_workers', 'Peak workers', 'max');
select lives_ok(format($$select record_usage(%L, 'report_run', q, 'rr-' || q) from unnest(array[5, 7]) q$$, :'org'), 'two report runs');
select lives_ok(format($$select record_usage(%L, 'peak_workers', q, 'pw-' || q) from unnest(array[3, 9, 4]) q$$, :'org'), 'three worker reports');
reset role;
select is((select array[private.meter_usage(:'org', 'report_run', :'m0'::date, true), private.meter_usage(:'org', 'peak_workers', :'m0'::date, true)]),
  array[2, 9]::bigint[], 'count counts events (not 5 + 7), max keeps the highest report');

select * from finish();
rollback;
