-- CRM (seed 004): people tied across organizations only by what they
-- verified, each organization's own record of its clients, jobs, invoices,
-- payments, campaigns and reminders; every function's happy path and its
-- refusals, through PostgREST's role switch. (The trust model's attacks:
-- tests/test_crm_trust.py.)
begin;
\ir _helpers.psql
select plan(127);

select tests.user('olga@lawns.test') as olga \gset
select tests.user('gus@lawns.test') as gus \gset
select tests.user('mo@other.test') as mo \gset
select tests.user('pia@staff.test') as pia \gset
select tests.personal_org(:'olga') as org \gset
select tests.personal_org(:'mo') as other \gset
insert into tenancy.memberships (organization_id, user_id, role_key, member_type) values (:'org', :'gus', 'tenant_guest', 'guest');
select tests.grant_system_role(:'pia', 'platform_admin');

-- upsert_person ------------------------------------------------------------------
select tests.act_as(:'olga');
create temporary table john as select * from upsert_person('  John@Example.COM ', '(555) 123-4567', 'John', 'Doe');
select is((select is_new from john), true, 'upsert_person creates a new person');
select is((select count(*)::int from crm.people where id = (select person_id from john)), 0,
  'a person who is nobody''s client is not visible, even to the caller who created them');
reset role;
select is((select row(primary_email, primary_phone_e164)::text from crm.people where id = (select person_id from john)),
  '(john@example.com,+15551234567)', 'the email is lower-cased and the phone normalized to E.164; they are the primary contacts');
select is((select count(*)::int from crm.marketing_consents where person_id = (select person_id from john)), 0,
  'a new key records no consent: nobody is opted in until someone records it');
select tests.act_as(:'olga');
select is((select row(person_id, is_new)::text from upsert_person(p_phone => '+1 555 123 4567')),
  row((select person_id from john), false)::text, 'the same phone finds the same person');
select throws_ok($$select upsert_person(p_email => 'x@y.test', p_phone => '12ab')$$, '22023', null,
  'a phone that cannot be normalized is refused');
select throws_ok($$select upsert_person(p_phone => '+0123456789')$$, '22023', null, 'a country code of 0 is refused');
select throws_ok($$select upsert_person(p_first_name => 'Nobody')$$, '22023', 'upsert_person: an email or a phone is required',
  'neither email nor phone is refused');
select throws_ok($$select upsert_person(p_email => 'not-an-email')$$, '22023', null, 'a malformed email is refused');
select tests.act_as_anon();
select throws_ok($$select upsert_person(p_email => 'anon@y.test')$$, '42501', null, 'anon cannot upsert people');

-- Seed 004's front end: the member adds the person as a client through RLS.
select tests.act_as(:'olga');
create temporary table john_client as
  with ins as (insert into crm.org_clients (organization_id, person_id, status)
               values (:'org', (select person_id from john), 'active') returning id, search_name || ' / ' || search_contact as search_text)
  select * from ins;
select is((select search_text from john_client), 'john doe / john@example.com 15551234567', 'the client row gets the person''s search columns');
select is((select row(first_name, email, phone_e164)::text from crm.org_clients where id = (select id from john_client)),
  '(John,john@example.com,+15551234567)', 'the client takes what its caller typed for the key: the organization''s own record');
select is((select count(*)::int from crm.people where id = (select person_id from john)), 0,
  'the person stays out of the organization''s sight: it reads its own record');
select throws_ok(format($$insert into crm.org_clients (organization_id, person_id, status) values (%L, %L, 'active')$$,
                        :'other', (select person_id from john)),
  '42501', null, 'the same insert into another organization is refused');
select throws_ok(format($$update crm.org_clients set ltv_cents = 100 where id = %L$$, (select id from john_client)),
  '42501', null, 'a member cannot write lifetime value');
reset role;
select throws_ok(format($$update crm.org_clients set ltv_cents = 100 where id = %L$$, (select id from john_client)),
  '23514', null, 'nobody writes lifetime value by hand, not even the back end');
select tests.act_as(:'mo');
select is((select count(*)::int from crm.people where id = (select person_id from john)), 0, 'another organization does not see the person');
select is((select count(*)::int from crm.org_clients), 0, 'nor the client');

-- propagate_contact_update ----------------------------------------------------------
select throws_ok(format($$select propagate_contact_update(%L, 'Jon')$$, (select person_id from john)), '42501', null,
  'an organization without the person as client cannot change them');
select tests.act_as(:'olga');
select throws_ok(format($$select propagate_contact_update(%L, 'Jon')$$, :'org'), 'P0002', null, 'an unknown person is reported');
select is((select row(success, person_id)::text from propagate_contact_update((select person_id from john), p_email => 'jd@work.test', p_phone => '555.987.0000')),
  row(true, (select person_id from john))::text, 'propagate_contact_update answers (success, person_id)');
select is((select row(email, phone_e164)::text from crm.org_clients where id = (select id from john_client)),
  '(jd@work.test,+15559870000)', 'the organization''s record of its client takes the new email and phone');
reset role;
select is((select row(primary_email, primary_phone_e164)::text from crm.people where id = (select person_id from john)),
  '(,)', 'the key forgot what was typed for it once it was a client');
select tests.act_as(:'olga');
select is((select search_name || ' / ' || search_contact from crm.org_clients where id = (select id from john_client)), 'john doe / jd@work.test 15559870000',
  'the search text follows the record');
select * from upsert_person('someone@else.test') \gset
select throws_ok(format($$select propagate_contact_update(%L, p_email => 'someone at else')$$, (select person_id from john)),
  '22023', null, 'an email that is not one is refused');

-- create_job_with_optional_new_client ----------------------------------------------------
reset role;
insert into crm.services (organization_id, name, default_price_cents) values (:'org', 'Mowing', 4500) returning id as service \gset
insert into crm.services (organization_id, name) values (:'other', 'Elsewhere') returning id as other_service \gset
select tests.act_as(:'olga');
create temporary table booked as
select create_job_with_optional_new_client(p_organization_id => :'org',
         p_client => '{"first_name": "Jane", "last_name": "Smith", "email": "jane@example.com", "phone": "+15559876543",
                       "address": {"address1": "123 Main St", "city": "San Francisco", "state": "CA", "postal": "94102"}}',
         p_service_id => :'service', p_start_at => now() + interval '3 days', p_end_at => now() + interval '3 days 2 hours',
         p_notes => 'First time client') as r;
select is((select r -> 'success' from booked), 'true'::jsonb, 'the booking answers {success, job}');
select is((select (r -> 'job' ->> 'price_cents')::int from booked), 4500, 'without a price the job takes the service''s default');
select is((select row(oc.status, a.address1)::text from crm.org_clients oc join crm.client_addresses a on a.organization_id = oc.organization_id and a.id = oc.default_address_id
            where oc.id = (select (r -> 'job' ->> 'org_client_id')::uuid from booked)),
  '(active,"123 Main St")', 'the new client is active with the new address as default');
select is((select array_agg(slot order by slot) from crm.reminders where job_id = (select (r -> 'job' ->> 'id')::uuid from booked)),
  array['job_24h', 'job_2h'], 'the job has its 24 h and 2 h reminders');
select is((create_job_with_optional_new_client(:'org', (select id from john_client), null, null, now() + interval '2 days', null, 9900) -> 'job' ->> 'price_cents')::int,
  9900, 'a job for an existing client');
select throws_ok(format($$select create_job_with_optional_new_client(%L, %L, p_start_at => now(), p_end_at => now() - interval '1 hour')$$,
                        :'org', (select id from john_client)), '23514', null, 'a job ending before it starts is refused');
select throws_ok(format($$select create_job_with_optional_new_client(%L, %L, '{"email": "x@y.test"}', p_start_at => now())$$,
                        :'org', (select id from john_client)), '22023', null, 'both an existing and a new client is refused');
select throws_ok(format($$select create_job_with_optional_new_client(%L, %L, p_service_id => %L, p_start_at => now())$$,
                        :'org', (select id from john_client), :'other_service'), '23503', null, 'a service of another organization is refused');
select throws_ok(format($$select create_job_with_optional_new_client(%L, p_client => '{"first_name": "No contact"}', p_start_at => now())$$, :'org'),
  '22023', null, 'a new client without email or phone is refused, nothing written');
reset role;
insert into crm.org_clients (organization_id, person_id) values (:'other', :'person_id') returning id as other_client \gset
select tests.act_as(:'olga');
select throws_ok(format($$select create_job_with_optional_new_client(%L, %L, p_start_at => now())$$, :'org', :'other_client'),
  'P0002', null, 'a client of another organization is refused');
select tests.act_as(:'mo');
select throws_ok(format($$select create_job_with_optional_new_client(%L, %L, p_start_at => now())$$, :'org', (select id from john_client)),
  '42501', null, 'another organization''s member cannot book here');
select tests.act_as(:'gus');
select throws_ok(format($$select create_job_with_optional_new_client(%L, %L, p_start_at => now())$$, :'org', (select id from john_client)),
  '42501', null, 'a guest (crm.read) cannot book');
select is((select count(*)::int from crm.jobs), 2, 'a guest reads the jobs');

-- Jobs: the address is the client's, the status follows the state machine.
select tests.act_as(:'olga');
select (r -> 'job' ->> 'id') as job, (r -> 'job' ->> 'address_id') as jane_address from booked \gset
select throws_ok(format($$update crm.jobs set address_id = %L where org_client_id = %L$$, :'jane_address', (select id from john_client)),
  '23503', null, 'a job cannot take place at another client''s address');
select throws_ok(format($$update crm.jobs set status = 'completed' where id = %L$$, :'job'), '23514',
  format('crm.jobs %s: status cannot move from scheduled to completed', :'job'), 'an illegal job transition is refused');
update crm.jobs set status = 'canceled' where id = :'job';
select is((select array_agg(distinct status) from crm.reminders where job_id = :'job'), array['canceled'],
  'a canceled job''s reminders are canceled');

-- Invoices and payments --------------------------------------------------------------
insert into crm.invoices (organization_id, org_client_id, currency, due_date)
values (:'org', (select id from john_client), 'USD', current_date + 10) returning id as inv \gset
insert into crm.invoice_lines (organization_id, invoice_id, description, quantity, unit_price_cents)
values (:'org', :'inv', 'Mowing', 2, 4500), (:'org', :'inv', 'Edging', 1, 1000);
select is((select total_cents from crm.invoices where id = :'inv'), 10000::bigint, 'the total is the sum of the lines');
select throws_ok(format($$insert into crm.payments (organization_id, invoice_id, currency, amount_cents) values (%L, %L, 'USD', 100)$$, :'org', :'inv'),
  '55000', null, 'a draft invoice takes no payment');
update crm.invoices set status = 'open' where id = :'inv';
select throws_ok(format($$insert into crm.invoice_lines (organization_id, invoice_id, description, unit_price_cents) values (%L, %L, 'More', 1)$$, :'org', :'inv'),
  '55000', null, 'an open invoice''s lines are fixed');
select throws_ok(format($$insert into crm.invoices (organization_id, org_client_id, currency) values (%L, %L, 'EUR')$$, :'org', (select id from john_client)),
  '23503', null, 'an invoice is in the client''s currency');
insert into crm.payments (organization_id, invoice_id, currency, amount_cents, status) values (:'org', :'inv', 'USD', 6000, 'succeeded');
select throws_ok(format($$insert into crm.payments (organization_id, invoice_id, currency, amount_cents) values (%L, %L, 'USD', 4001)$$, :'org', :'inv'),
  '23514', format('payment of 4001 exceeds the open amount 4000 of invoice %s', :'inv'), 'a payment over the open amount is refused');
select is((select ltv_cents from crm.org_clients where id = (select id from john_client)), 6000::bigint, 'lifetime value follows succeeded payments');
insert into crm.payments (organization_id, invoice_id, currency, amount_cents) values (:'org', :'inv', 'USD', 4000) returning id as pending \gset
select is((select status from crm.invoices where id = :'inv'), 'open', 'a pending payment does not pay the invoice');
update crm.payments set status = 'succeeded' where id = :'pending';
select is((select status from crm.invoices where id = :'inv'), 'paid', 'the invoice is paid once payments cover it');
update crm.payments set status = 'refunded' where id = :'pending';
select is((select ltv_cents from crm.org_clients where id = (select id from john_client)), 6000::bigint, 'a refund takes back its lifetime value');
select throws_ok(format($$update crm.payments set status = 'pending' where id = %L$$, :'pending'), '23514', null,
  'a refunded payment does not move back');
select tests.act_as(:'gus');
select throws_ok(format($$insert into crm.invoices (organization_id, org_client_id, currency) values (%L, %L, 'USD')$$, :'org', (select id from john_client)),
  '42501', null, 'a guest cannot invoice (crm.billing)');

-- Timeline, stats, search ----------------------------------------------------------------
select tests.act_as(:'olga');
update crm.org_clients set notes = '["gate code 1234"]' where id = (select id from john_client);
select is((select array_agg(type order by created_at desc, id) from client_timeline((select id from john_client))),
  (select array_agg(type order by created_at desc, id) from (
     select 'note' as type, (n ->> 'created_at')::timestamptz as created_at, (n ->> 'id')::uuid as id
       from crm.org_clients, jsonb_array_elements(notes) n where id = (select id from john_client)
     union all select 'job', created_at, id from crm.jobs where org_client_id = (select id from john_client)
     union all select 'invoice', created_at, id from crm.invoices where org_client_id = (select id from john_client)
     union all select 'payment', p.created_at, p.id from crm.payments p where p.invoice_id = :'inv') e),
  'the timeline holds notes, jobs, invoices and payments, newest first');
select is((select data ->> 'text' from client_timeline((select id from john_client)) where type = 'note'), 'gate code 1234',
  'a note given as a string gets an id and a time');
select is((select count(*)::int from client_timeline((select id from john_client), 2)), 2, 'p_limit pages the timeline');
select is(client_stats(:'org') - 'currency',
  jsonb_build_object('total_clients', 2, 'active_clients', 2, 'lead_clients', 0, 'inactive_clients', 0, 'total_ltv_cents', 6000, 'avg_ltv_cents', 3000),
  'client_stats gives the seed''s six numbers');
select is((select array_agg(last_name order by last_name) from search_clients('smtih', :'org')), array['Smith'],
  'search tolerates a typo');
select is((select array_agg(last_name) from search_clients('jd@work', :'org')), array['Doe'], 'search finds an email');
select is((select array_agg(last_name) from search_clients('(555) 987-0000', :'org')), array['Doe'], 'search finds a phone as typed');
select is((select array_agg(last_name) from search_clients('ja', :'org')), array['Smith'], 'two letters: a prefix of the name');
select throws_ok(format($$select * from search_clients('  ', %L)$$, :'org'), '22023', null, 'an empty query is refused');
select tests.act_as(:'mo');
select throws_ok(format($$select * from client_timeline(%L)$$, (select id from john_client)), 'P0002', null,
  'another organization''s member learns nothing of the client');
select throws_ok(format($$select client_stats(%L)$$, :'org'), '42501', null, 'nor its statistics');
select throws_ok(format($$select * from search_clients('john', %L)$$, :'org'), '42501', null, 'nor searches its clients');

-- Campaigns: only to people who opted in ----------------------------------------------------
reset role;
select set_marketing_consent((select person_id from john), 'email', true, :'org');
insert into crm.campaigns (organization_id, channel, name, segment) values (:'org', 'email', 'Spring', '{"status": ["active"]}') returning id as campaign \gset
select tests.act_as(:'olga');
select is(queue_campaign_sends(:'campaign'), 1, 'the campaign is queued for the one active client who opted in');
select is(queue_campaign_sends(:'campaign'), 0, 'queuing again adds nobody twice');
reset role;
select throws_ok(format($$insert into crm.campaign_sends (organization_id, campaign_id, org_client_id, person_id)
                          select organization_id, %L, id, person_id from crm.org_clients where organization_id = %L and person_id <> %L$$,
                        :'campaign', :'org', (select person_id from john)),
  '23514', null, 'a send to someone who did not opt in is refused');
select tests.act_as(:'olga');
select set_marketing_consent((select person_id from john), 'email', false, :'org');
reset role;
select is((select count(*)::int from claim_campaign_sends('worker-1')), 0, 'a person who opted out since is not sent to');
select is((select row(status, error)::text from crm.campaign_sends where campaign_id = :'campaign'), '(failed,"opted out")', '... the send says why');
select set_marketing_consent((select person_id from john), 'email', true, :'org');
reset role;
select is((select count(*)::int from claim_campaign_sends('worker-2')), 0, 'a failed send is not claimed again');
update crm.campaign_sends set status = 'queued', error = null where campaign_id = :'campaign';
select is((select count(*)::int from claim_campaign_sends('worker-2')), 1, 'a queued send to an opted-in person is claimed');
select lives_ok(format($$select complete_campaign_send(%L, 'worker-2')$$, (select id from crm.campaign_sends where campaign_id = :'campaign')),
  'the worker holding it reports it sent');
select is((select status from crm.campaign_sends where campaign_id = :'campaign'), 'sent', '... and it is');
select throws_ok(format($$select complete_campaign_send(%L, 'worker-2')$$, (select id from crm.campaign_sends where campaign_id = :'campaign')),
  'P0002', null, 'a send is completed once');
select tests.act_as(:'mo');
select throws_ok(format($$select queue_campaign_sends(%L)$$, :'campaign'), 'P0002', null,
  'another organization''s member cannot queue this organization''s campaign (it is not found for them)');
select throws_ok($$select * from claim_campaign_sends('w')$$, '42501', null, 'claiming campaign sends is for the back end');
select throws_ok(format($$select set_marketing_consent(%L, 'sms', true, %L)$$, (select person_id from john), :'org'), '42501', null,
  'another organization cannot record the person''s consent');
select throws_ok(format($$select add_person_address(%L, '{"address1": "1 Spy Lane"}')$$, (select person_id from john)), '42501', null,
  'nor add an address to them');
select tests.act_as(:'olga');
select throws_ok(format($$select set_marketing_consent(%L, 'fax', true, %L)$$, (select person_id from john), :'org'), '23514', null,
  'an unknown consent channel is refused');
select throws_ok(format($$select set_marketing_consent(%L, 'sms', null, %L)$$, (select person_id from john), :'org'), '22004', null,
  'a consent that is neither yes nor no is refused');
reset role;  -- the person's own addresses: the back end (or the linked user)
select throws_ok(format($$select add_person_address(%L, '{"city": "Nowhere"}')$$, (select person_id from john)), '22023', null,
  'an address without address1 is refused');
select throws_ok(format($$select add_person_address(%L, '{"address1": "North Pole", "lat": 91, "lng": 0}')$$, (select person_id from john)),
  '23514', null, 'a latitude out of range is refused');
select count(*) as addresses_before from crm.addresses \gset
select throws_ok(format($$select add_person_address(%L, '{"address1": "1 Main St", "country": "USA"}')$$, (select person_id from john)),
  '22023', 'address: country is an ISO 3166-1 alpha-2 code (two letters)', 'a country of three letters is refused');
select throws_ok(format($$select add_person_address(%L, '{"address1": "1 Main St", "lat": "north", "lng": 0}')$$, (select person_id from john)),
  '22023', 'address: lat and lng are numbers of at most three digits before the point', 'a latitude that is no number is refused');
select is((select count(*) from crm.addresses), :'addresses_before'::bigint, '... and nothing was written');

-- A second organization serving the person cannot rewrite what the first
-- one recorded, nor opt them in for it; each sees only its own consent
-- records.
reset role;
insert into crm.org_clients (organization_id, person_id) values (:'other', (select person_id from john));
select tests.act_as(:'mo');
select propagate_contact_update((select person_id from john), p_email => 'mo@takeover.test');
reset role;
select is((select email from crm.org_clients where id = (select id from john_client)), 'jd@work.test',
  'a second organization serving the person changes its own record only');
select tests.act_as(:'mo');
select lives_ok(format($$select create_job_with_optional_new_client(%L, p_client => '{"email": "jd@work.test", "address": {"address1": "9 Oak Ave"}}',
                                                                   p_start_at => now() - interval '1 day')$$, :'other'),
  'it books the shared client at a new address (adding an address rewrites nothing)');
select lives_ok(format($$select set_marketing_consent(%L, 'sms', true, %L)$$, (select person_id from john), :'other'),
  'it records consent for itself');
select is((select count(*)::int from crm.marketing_consents where person_id = (select person_id from john) and recorded_by_organization_id = :'org'), 0,
  'it does not see the consent records of the organization it competes with');
reset role;
select is(private.crm_opted_in((select person_id from john), 'sms', :'org'), false, 'another organization''s opt-in does not count for this one');
select is(private.crm_opted_in((select person_id from john), 'sms', :'other'), true, '... it counts for the organization that recorded it');
insert into crm.marketing_consents (person_id, channel, opted_in, source) values ((select person_id from john), 'sms', false, 'person');
select is(private.crm_opted_in((select person_id from john), 'sms', :'other'), false, 'the person''s own opt-out wins');
-- A payment does not succeed on a voided invoice; an invoice with a pending payment is not voided.
insert into crm.invoices (organization_id, org_client_id, currency, due_date) values (:'org', (select id from john_client), 'USD', current_date + 30)
returning id as inv3 \gset
insert into crm.invoice_lines (organization_id, invoice_id, description, unit_price_cents) values (:'org', :'inv3', 'Hedge', 3000);
update crm.invoices set status = 'open' where id = :'inv3';
insert into crm.payments (organization_id, invoice_id, currency, amount_cents) values (:'org', :'inv3', 'USD', 3000) returning id as pending3 \gset
select throws_ok(format($$update crm.invoices set status = 'void' where id = %L$$, :'inv3'), '23514', null,
  'an invoice with a pending payment is not voided');
update crm.payments set status = 'failed' where id = :'pending3';
update crm.invoices set status = 'void' where id = :'inv3';
select throws_ok(format($$update crm.payments set status = 'succeeded' where id = %L$$, :'pending3'), '23514', null,
  'a failed payment does not come back to succeed');
-- Outsiders learn nothing from the job trigger; a canceled campaign stays canceled; notes are signed by the database.
select tests.act_as(:'mo');
select throws_ok(format($$insert into crm.jobs (organization_id, org_client_id, start_at) values (%L, gen_random_uuid(), now())$$, :'org'),
  '42501', null, 'an outsider''s job insert is refused before the client is looked up');
select tests.act_as(:'olga');
update crm.campaigns set status = 'canceled' where id = :'campaign';
select throws_ok(format($$update crm.campaigns set status = 'queued' where id = %L$$, :'campaign'), '23514', null,
  'a canceled campaign is not revived');
update crm.org_clients set notes = notes || jsonb_build_array(jsonb_build_object('text', 'forged', 'author_id', :'mo', 'created_at', '2001-01-01'))
 where id = (select id from john_client);
select is((select row(n ->> 'author_id', (n ->> 'created_at')::timestamptz > '2001-01-02')::text
             from crm.org_clients, jsonb_array_elements(notes) n where id = (select id from john_client) and n ->> 'text' = 'forged'),
  row(:'olga', true)::text, 'a new note is signed and dated by the database');

-- Reminders: scheduler and workers -------------------------------------------------------
select throws_ok($$select schedule_reminders()$$, '42501', null, 'the scheduler is for the back end');
select throws_ok($$select * from claim_reminders('w')$$, '42501', null, 'so is claiming');
reset role;
insert into crm.invoices (organization_id, org_client_id, currency, due_date) values (:'org', (select id from john_client), 'USD', current_date + 5) returning id as inv2 \gset
insert into crm.invoice_lines (organization_id, invoice_id, description, unit_price_cents) values (:'org', :'inv2', 'Visit', 5000);
update crm.invoices set status = 'open' where id = :'inv2';
delete from crm.reminders;
select is(schedule_reminders(), 4, 'the scheduler creates the missing reminders: a scheduled job''s two and an open invoice''s two');
select is(schedule_reminders(), 0, 'running it again creates none');
update crm.reminders set send_at = now() - interval '1 minute';
select is((select array_agg(type order by type) from claim_reminders('w1', 10)), array['invoice_due', 'invoice_due', 'job_upcoming', 'job_upcoming'],
  'a worker claims the due reminders');
select is((select count(*)::int from claim_reminders('w2', 10)), 0, 'a second worker gets none of the leased ones');
select lives_ok(format($$select complete_reminder(%L, 'w1')$$, (select id from crm.reminders where type = 'invoice_due' limit 1)), 'the worker reports one sent');
select throws_ok(format($$select complete_reminder(%L, 'w1')$$, (select id from crm.reminders where status = 'sent')), 'P0002', null,
  'a reminder is completed once');
select throws_ok($$select * from claim_reminders('w', 0)$$, '22023', null, 'a batch of 0 is refused');
select throws_ok(format($$select complete_reminder(%L, 'w2')$$, (select id from crm.reminders where status = 'pending' and claimed_by = 'w1' limit 1)),
  '55000', null, 'a worker reports only on what it holds');
select throws_ok(format($$select complete_reminder(%L, null)$$, (select id from crm.reminders where status = 'pending' and claimed_by = 'w1' limit 1)),
  '22023', 'complete_reminder: a worker name, a batch of 1 to 1000 and a lease of 10 s to 1 h', 'a report names its worker');
select is((select count(*)::int from crm.reminders where status = 'sent'), 1, '... and neither changed a reminder');
select throws_ok(format($$select client_account(%L)$$, :'org'), 'P0002', format('client_account: no client %s', :'org'),
  'client_account reports an unknown client');
select tests.act_as(:'olga');
select throws_ok($$select * from my_service_history(0)$$, '22023', 'my_service_history: p_limit is 1 to 1000', 'the portal pages 1 to 1000 rows');
select tests.act_as_anon();
select throws_ok($$select * from my_service_history()$$, '42501', null, 'anon has no portal');
reset role;

-- Linking users to people ----------------------------------------------------------------
insert into auth.users (email, email_confirmed_at) values ('jane@example.com', now()) returning id as jane_user \gset
select is((select count(*)::int from crm.user_person_links where user_id = :'jane_user'), 1, 'a signup with a confirmed email is linked to the person');
insert into auth.users (email) values ('JD@work.test') returning id as john_user \gset
select is((select count(*)::int from crm.user_person_links where user_id = :'john_user'), 0, 'an unconfirmed email links nothing');
update auth.users set email_confirmed_at = now() where id = :'john_user';
select tests.act_as(:'john_user');
select is((select array_agg(primary_email) from crm.people), array['jd@work.test'], 'once confirmed, the user sees their own person (and only that)');

-- Privacy: a client who is not a user, and a linked user ----------------------------------------
reset role;
insert into crm.org_client_settings (organization_id, org_client_id, custom_fields)
values (:'org', (select id from john_client), '{"birthday": "1980-02-03"}');
select tests.act_as(:'olga');
select throws_ok(format($$select erase_person(%L)$$, (select person_id from john)), '42501', null, 'a member cannot erase a person');
select throws_ok(format($$select export_person_data(%L)$$, (select person_id from john)), '42501', null, '... nor export one');
reset role;
select throws_ok(format($$select export_person_data(%L)$$, :'org'), 'P0002', null, 'an unknown person is reported');
update crm.org_clients set currency = 'EUR' where id = (select org_client_id from search_clients('jane', :'org'));
select throws_ok(format($$select client_stats(%L)$$, :'org'), '22023', null,
  'client_stats does not add up lifetime values in several currencies');
select is((client_stats(:'org', 'USD') ->> 'total_ltv_cents')::bigint, 6000::bigint, '... unless told which');
select tests.act_as(:'pia');
select ok(export_person_data((select person_id from john)) ? 'crm.person_emails', 'privacy staff export a person''s data');
select is(erase_person((select person_id from john)), (select person_id from john), 'privacy staff erase a person');
reset role;
select is((select row(p.first_name, p.primary_email, (select count(*) from crm.person_emails e where e.person_id = p.id),
                      (select oc.notes from crm.org_clients oc where oc.id = (select id from john_client)))::text
             from crm.people p where p.id = (select person_id from john)),
  '(,,0,[])', 'names and contacts are gone, the notes emptied');
select is((select row(total_cents, status)::text from crm.invoices where id = :'inv'), '(10000,paid)', 'the invoices keep their amounts');
select is((select custom_fields from crm.org_client_settings where org_client_id = (select id from john_client)), '{}'::jsonb,
  'the organization''s custom fields on the client are emptied');
select is(erase_user(:'jane_user'), :'jane_user'::uuid, 'erasing a linked user ...');
select is((select row(first_name, last_name)::text from crm.people p join crm.user_person_links l on l.person_id = p.id where l.user_id = :'jane_user'),
  '(,)', '... erases the person linked to them');

select * from finish();
rollback;
