-- Refusals of the functions whose other tests cover only the happy path:
-- SQLSTATE, message where it matters, and nothing written.
begin;
\ir _helpers.psql
select plan(24);

select tests.user('rita@r.test') as rita \gset
select tests.user('out@r.test') as outsider \gset
select tests.personal_org(:'rita') as org \gset
select ingest_payment_event('stripe', 'evt_r', 'payment.succeeded', '{}', now());

-- Billing and inbox functions are for the back end.
select tests.act_as(:'rita');
select throws_ok($$select claim_payment_events('w')$$, '42501', null, 'a tenant owner cannot claim inbox events');
select throws_ok($$select process_payment_events('w')$$, '42501', null, 'nor process them');
select throws_ok(format($$select handle_payment_event((select id from billing.payment_events limit 1), 'w')$$), '42501', null,
  'nor handle one');
select throws_ok($$select renew_subscriptions()$$, '42501', null, 'nor renew subscriptions');
select throws_ok(format($$select track_platform_revenue(%L, 'stripe', 'ch_r', 1000, 'USD')$$, :'org'), '42501', null,
  'nor track platform revenue');
select throws_ok($$select open_incident('Outage', 'high')$$, '42501', null, 'nor open incidents');
reset role;
select is((select attempts from billing.payment_event_processing), 0, 'the refused calls touched no inbox event');
select throws_ok($$select claim_payment_events('w', 0)$$, '22023', 'claim_payment_events: max_events must be between 1 and 1000',
  'a batch of zero is refused');
select throws_ok($$select handle_payment_event(gen_random_uuid(), 'w')$$, 'P0002', null, 'an unknown event is refused');
select throws_ok(format($$select track_platform_revenue(%L, 'stripe', 'ch_r', 1000, 'USD')$$, :'org'), 'P0002', null,
  'revenue without a connected account is refused');
select is((select count(*)::int from billing.platform_revenue), 0, 'and writes nothing');
select throws_ok($$select open_incident('Outage', 'apocalyptic')$$, '23514', null, 'an unknown incident severity is refused');
select is((select count(*)::int from audit.incidents), 0, 'and writes nothing');
select throws_ok($$select private.load_catalog('{"plans": []}')$$, '22023',
  'load_catalog: the document needs arrays "meters", "features" and "plans"', 'a catalog without meters and features is refused');
select throws_ok($$select private.load_catalog('{"meters": [{"key": "documents", "aggregation": "live_count"}], "features": [], "plans": []}')$$,
  '22023', 'load_catalog: meters[0] ("documents") needs "name"', 'a catalog item without a key it needs is refused, named');
select is((select count(*)::int from catalog.meters where key = 'documents'), 0, 'and writes nothing');

-- Reading money and usage needs membership.
select tests.act_as(:'outsider');
select throws_ok(format($$select credit_balance(%L)$$, :'org'), '42501', null, 'an outsider cannot read the credit balance');
select throws_ok(format($$select record_organization_usage(%L)$$, :'org'), '42501', null, 'nor snapshot the usage');
reset role;
select is((select count(*)::int from usage.organization_usage), 0, 'no snapshot was written');
select start_date + 3 as mid_period from private.billing_period(:'org', now()) \gset
select tests.act_as(:'rita');
select throws_ok(format($$select record_organization_usage(%L, %L)$$, :'org', :'mid_period'),
  '22023', null, 'a date that does not start a period is refused');
reset role;

-- Consents and requests need a signed-in user.
select tests.act_as_anon();
select throws_ok($$select withdraw_consent('newsletter', 'v1')$$, '42501', null, 'anon cannot withdraw a consent');
select throws_ok($$select submit_subject_request('access')$$, '42501', null, 'anon cannot file a request');
reset role;
select tests.act_as(:'rita');
select throws_ok($$select submit_subject_request('telepathy')$$, '23514', null, 'an unknown request type is refused');
reset role;
select is((select count(*)::int from privacy.subject_requests) + (select count(*)::int from privacy.consents), 0,
  'the refused calls wrote nothing');

select * from finish();
rollback;
