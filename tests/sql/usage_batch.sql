-- record_usage_batch: many events in one call, all or nothing, duplicates
-- reported per item; and the tenant-read helpers it shares with RLS.
begin;
\ir _helpers.psql
select plan(21);

select tests.user('bao@b.test') as bao \gset
select tests.user('out@o.test') as outsider \gset
select tests.personal_org(:'bao') as org \gset

select tests.act_as(:'bao');
create temporary table first_call as
select * from record_usage_batch(:'org', '[
  {"feature_key": "api_call", "quantity": 3, "idempotency_key": "b-1"},
  {"feature_key": "record_created", "quantity": 2, "idempotency_key": "b-2", "metadata": {"source": "import"}},
  {"feature_key": "api_call", "quantity": 3, "idempotency_key": "b-1"}
]');
select is((select array_agg(item order by item) from first_call), array[1, 2, 3], 'one row per item, numbered from 1');
select is((select array_agg(duplicate order by item) from first_call), array[false, false, true],
  'a key repeated inside the batch is a duplicate of its first item');
select is((select count(distinct event_id)::int from first_call where idempotency_key = 'b-1'), 1,
  'the duplicate is told the first item''s event id');
select is((check_feature_access(:'bao', 'max_api_calls_per_month', :'org') ->> 'used')::int, 3,
  'the counter holds the api calls once');
select is((select metadata from usage.events where organization_id = :'org' and idempotency_key = 'b-2'), '{"source": "import"}'::jsonb,
  'metadata is stored with the event');
select is((select array_agg(duplicate order by item) from record_usage_batch(:'org', '[
  {"feature_key": "api_call", "quantity": 3, "idempotency_key": "b-1"},
  {"feature_key": "api_call", "quantity": 4, "idempotency_key": "b-3"}]')), array[true, false],
  'a replayed key is a duplicate in a later batch; a new key beside it is recorded');
select is((select event_id from record_usage_batch(:'org', '[{"feature_key": "api_call", "quantity": 1, "idempotency_key": "b-1"}]')),
          (select event_id from first_call where item = 1), 'a replay returns the original event id');
select is((check_feature_access(:'bao', 'max_api_calls_per_month', :'org') ->> 'used')::int, 7, 'replays were not counted');
select is((select count(*)::int from record_usage_batch(:'org', '[]')), 0, 'an empty batch records nothing');

-- All or nothing: one bad item refuses the batch, and nothing of it is written.
select throws_ok(format($$select * from record_usage_batch(%L, %L)$$, :'org',
  '[{"feature_key": "api_call", "quantity": 1, "idempotency_key": "x-1"}, {"feature_key": "teleports", "quantity": 1, "idempotency_key": "x-2"}]'),
  '22023', 'record_usage_batch: item 2 unknown meter "teleports"', 'an unknown meter refuses the batch, naming the item');
select throws_ok(format($$select * from record_usage_batch(%L, %L)$$, :'org',
  '[{"feature_key": "api_call", "quantity": 2.5, "idempotency_key": "x-3"}]'),
  '22023', 'record_usage_batch: item 1 quantity must be a whole number between 1 and 10^12', 'a fractional quantity is refused');
select throws_ok(format($$select * from record_usage_batch(%L, %L)$$, :'org',
  '[{"feature_key": "api_call", "quantity": 1, "idempotency_key": "x-4"}, {"feature_key": "api_call", "quantity": 0, "idempotency_key": "x-5"}]'),
  '22023', 'record_usage_batch: item 2 quantity must be a whole number between 1 and 10^12', 'a zero quantity is refused');
select throws_ok(format($$select * from record_usage_batch(%L, %L)$$, :'org', '[{"feature_key": "api_call", "quantity": 1}]'),
  '22023', 'record_usage_batch: item 1 has no idempotency_key', 'an item without a key is refused');
select throws_ok(format($$select * from record_usage_batch(%L, %L)$$, :'org',
  format('[{"feature_key": "api_call", "quantity": 1, "idempotency_key": "x-6", "occurred_at": "%s"}]', now() - interval '400 days')),
  '22023', null, 'an event a year old is refused');
select throws_ok(format($$select * from record_usage_batch(%L, %L)$$, :'org',
  '[{"feature_key": "api_call", "quantity": 1, "idempotency_key": "x-7", "occurred_at": "last tuesday"}]'),
  '22023', 'record_usage_batch: an occurred_at is not a timestamp', 'an unreadable time is refused');
select throws_ok(format($$select * from record_usage_batch(%L, %L)$$, :'org', '{"feature_key": "api_call"}'),
  '22023', 'record_usage_batch: events must be a JSON array of objects', 'an object instead of an array is refused');
select throws_ok(format($$select * from record_usage_batch(%L, (select jsonb_agg(jsonb_build_object('feature_key', 'api_call', 'quantity', 1, 'idempotency_key', 'k' || n)) from generate_series(1, 10001) n))$$, :'org'),
  '22023', 'record_usage_batch: at most 10000 events per call, got 10001', 'more than 10000 items is refused');
select is((select count(*)::int from usage.events where organization_id = :'org' and idempotency_key like 'x-%'), 0,
  'refused batches wrote no event');
select is((select count(*)::int from usage.idempotency_keys where organization_id = :'org' and idempotency_key like 'x-%'), 0,
  'refused batches claimed no key');
reset role;

-- Who may: a non-member and anon are refused.
select tests.act_as(:'outsider');
select throws_ok(format($$select * from record_usage_batch(%L, %L)$$, :'org', '[{"feature_key": "api_call", "quantity": 1, "idempotency_key": "evil"}]'),
  '42501', null, 'a non-member cannot record usage');
reset role;
select tests.act_as_anon();
select throws_ok(format($$select * from record_usage_batch(%L, %L)$$, :'org', '[{"feature_key": "api_call", "quantity": 1, "idempotency_key": "anon"}]'),
  '42501', null, 'anon cannot record usage');
reset role;

select * from finish();
rollback;
