-- Seed 004 (CRM): its SQL blocks against a migrated, seeded database.
--
-- The data model blocks (people(...), org_clients(...), jobs(...), ...) are
-- column lists, not runnable DDL: each table exists in schema crm with the
-- seed's columns (money in the seed's *_cents columns, as bigint). One
-- difference: the seed's consents (email_opt_in, sms_opt_in per person) is
-- crm.marketing_consents, an append-only history per channel and
-- organization (DESIGN.md: consent has to be provable); and
-- org_client_settings is keyed by its org_client_id (one row per client), no id.
-- The policy example (org_clients visible to the organization's owner via
-- profiles.owner_id) is crm.org_clients' tenant policy: every member with
-- crm.read, and nobody else; tested here through the role switch.
-- The trigger link_user_to_person_trigger (AFTER INSERT ON profiles) is
-- tenantdb's link_user_to_person on the profile insert: tested here.
-- Seed 004's rpc calls (client_timeline, client_stats, search_clients with
-- their p_ names) run in tests/test_crm.py as PostgREST issues them.
begin;
\ir ../sql/_helpers.psql
select plan(16);

select bag_has($$select column_name::text from information_schema.columns where table_schema = 'crm' and table_name = 'people'$$,
  $$values ('id'), ('first_name'), ('last_name'), ('primary_email'), ('primary_phone_e164'), ('avatar_url'), ('created_at')$$, 'crm.people has the seed''s columns');
select bag_has($$select column_name::text from information_schema.columns where table_schema = 'crm' and table_name = 'person_emails'$$,
  $$values ('id'), ('person_id'), ('email'), ('is_primary')$$, 'crm.person_emails has the seed''s columns');
select bag_has($$select column_name::text from information_schema.columns where table_schema = 'crm' and table_name = 'person_phones'$$,
  $$values ('id'), ('person_id'), ('phone_e164'), ('is_primary')$$, 'crm.person_phones has the seed''s columns');
select bag_has($$select column_name::text from information_schema.columns where table_schema = 'crm' and table_name = 'addresses'$$,
  $$values ('id'), ('person_id'), ('label'), ('address1'), ('address2'), ('city'), ('state'), ('postal'), ('country'), ('lat'), ('lng')$$, 'crm.addresses has the seed''s columns');
select bag_has($$select column_name::text from information_schema.columns where table_schema = 'crm' and table_name = 'org_clients'$$,
  $$values ('id'), ('organization_id'), ('person_id'), ('status'), ('tags'), ('ltv_cents'), ('notes'), ('default_address_id'), ('created_at')$$, 'crm.org_clients has the seed''s columns');
select bag_has($$select column_name::text from information_schema.columns where table_schema = 'crm' and table_name = 'org_client_settings'$$,
  $$values ('org_client_id'), ('pricing_tier'), ('custom_fields'), ('tax_rate')$$, 'crm.org_client_settings has the seed''s columns');
select bag_has($$select column_name::text from information_schema.columns where table_schema = 'crm' and table_name = 'jobs'$$,
  $$values ('id'), ('organization_id'), ('org_client_id'), ('service_id'), ('start_at'), ('end_at'), ('address_id'), ('status'), ('price_cents'), ('notes')$$, 'crm.jobs has the seed''s columns');
select bag_has($$select column_name::text from information_schema.columns where table_schema = 'crm' and table_name = 'invoices'$$,
  $$values ('id'), ('organization_id'), ('org_client_id'), ('total_cents'), ('status'), ('due_date'), ('notes')$$, 'crm.invoices has the seed''s columns');
select bag_has($$select column_name::text from information_schema.columns where table_schema = 'crm' and table_name = 'payments'$$,
  $$values ('id'), ('invoice_id'), ('amount_cents'), ('status'), ('captured_at')$$, 'crm.payments has the seed''s columns');
select bag_has($$select column_name::text from information_schema.columns where table_schema = 'crm' and table_name = 'campaigns'$$,
  $$values ('id'), ('organization_id'), ('channel'), ('name'), ('segment'), ('template'), ('scheduled_at')$$, 'crm.campaigns has the seed''s columns');
select bag_has($$select column_name::text from information_schema.columns where table_schema = 'crm' and table_name = 'campaign_sends'$$,
  $$values ('id'), ('campaign_id'), ('person_id'), ('status'), ('error')$$, 'crm.campaign_sends has the seed''s columns');
select bag_has($$select column_name::text from information_schema.columns where table_schema = 'crm' and table_name = 'reminders'$$,
  $$values ('id'), ('organization_id'), ('org_client_id'), ('type'), ('send_at'), ('payload'), ('sent_at')$$, 'crm.reminders has the seed''s columns');

-- The policy example: members of the organization see its clients; another
-- organization's owner sees none.
select tests.user('owner@homebase.test') as owner \gset
select tests.user('rival@rival.test') as rival \gset
select tests.personal_org(:'owner') as org \gset
select tests.act_as(:'owner');
select person_id from upsert_person(p_email => 'john@example.com', p_first_name => 'John') \gset
insert into crm.org_clients (organization_id, person_id, status) values (:'org', :'person_id', 'active');
select is((select count(*)::int from crm.org_clients where organization_id = :'org'), 1, 'the owner sees the organization''s client');
reset role;
select tests.act_as(:'rival');
select is((select count(*)::int from crm.org_clients where organization_id = :'org'), 0, 'another organization''s owner sees none');
reset role;

-- The trigger: a homeowner who signs up with the email of a person is linked
-- (once the address is confirmed: an unconfirmed address proves nothing).
insert into auth.users (email, email_confirmed_at) values ('john@example.com', now()) returning id as john \gset
select is((select person_id from crm.user_person_links where user_id = :'john'), :'person_id'::uuid,
  'signing up with a known email links the user to the person');
select tests.act_as(:'john');
select is((select count(*)::int from crm.people where id = :'person_id'), 1, 'the linked user sees their person record');
reset role;

select * from finish();
rollback;
