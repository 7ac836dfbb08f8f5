-- privacy: consents, subject requests, export and erasure.
begin;
\ir _helpers.psql
select plan(25);

select tests.user('Zoe.Subject@example.test', '{"full_name": "Zoe Subject"}') as zoe \gset
select tests.user('dpo@platform.test') as dpo \gset
select tests.user('other@o.test') as other \gset
select tests.grant_system_role(:'dpo', 'platform_admin');
select tests.personal_org(:'zoe') as zorg \gset

-- Data of Zoe's in every domain.
update identity.users set username = 'zoe_s', first_name = 'Zoe', last_name = 'Subject', phone_number = '5550100',
       personal_city = 'Lisbon', education = '[{"school": "Uni"}]' where id = :'zoe';
insert into identity.sessions (user_id, token_hash, expires_at, ip_address, user_agent)
values (:'zoe', repeat('c', 64), now() + interval '1 day', '198.51.100.9', 'Firefox');
insert into identity.accounts (user_id, provider_id, account_id, password_hash) values (:'zoe', 'credential', 'zoe', 'secret-hash');
insert into identity.verifications (identifier, value_hash, purpose, expires_at)
values ('zoe.subject@example.test', repeat('d', 64), 'email_verification', now() + interval '1 hour');
select tests.act_as(:'other');
select create_organization('Other Co', 'other-co') as oorg \gset
reset role;
select tests.on_plan(:'oorg', 'pro');  -- seats for its invitees
select tests.act_as(:'other');
select count(*) from invite_member(:'oorg', 'zoe.subject@example.test');
reset role;
select record_usage(:'zorg', 'api_call', 10, 'zoe-usage');
select post_credit(:'zorg', 700, 'USD', 'promo', 'zoe-promo', 'Promo');
select generate_invoice(:'zorg', (select start_date from private.billing_period(:'zorg', now()))) as zinv \gset

-- Consents: history kept, current state derived.
select tests.act_as(:'zoe');
select lives_ok($$select give_consent('newsletter', 'v1')$$, 'a consent is given');
select lives_ok($$select withdraw_consent('newsletter', 'v1')$$, 'and withdrawn');
select is((select granted from current_consents where purpose = 'newsletter'), false, 'the current state is the latest decision');
select is((select count(*)::int from privacy.consents where purpose = 'newsletter'), 2, 'the history is kept');
select throws_ok($$select give_consent('newsletter', '')$$, '22023', null, 'a consent needs a policy version');
select submit_subject_request('erasure', 'please forget me') as req \gset
select is((select due_at - received_at from privacy.subject_requests where id = :'req'), interval '30 days', 'due in 30 days');
select throws_ok(format($$select export_user_data(%L)$$, :'other'), '42501', null, 'nobody exports another user''s data');
select is(export_user_data(:'zoe') #>> '{identity.users,0,first_name}', 'Zoe', 'a user exports their own data');
select ok(export_user_data(:'zoe') -> 'identity.accounts' -> 0 ? 'account_id'
          and not (export_user_data(:'zoe') -> 'identity.accounts' -> 0 ? 'password_hash'), 'credentials are never exported');
reset role;

-- Subject requests move forward only, handled by privacy staff.
select tests.act_as(:'dpo');
select lives_ok(format($$select advance_subject_request(%L, 'verified', 'identity checked')$$, :'req'), 'privacy staff verify the request');
select throws_ok(format($$select advance_subject_request(%L, 'received')$$, :'req'), '23514', null, 'a request cannot move backwards');
select lives_ok(format($$select advance_subject_request(%L, 'in_progress')$$, :'req'), 'and work on it');
reset role;
select tests.act_as(:'zoe');
select throws_ok(format($$select erase_user(%L)$$, :'zoe'), '42501', null, 'a user cannot run the erasure themselves');
reset role;

-- Erasure.
select tests.act_as(:'dpo');
select throws_ok($$select erase_user('00000000-0000-0000-0000-000000000000')$$, 'P0002', null, 'erasing an unknown user is refused');
select is(erase_user(:'zoe'), :'zoe'::uuid, 'erasing the user');
select is(erase_user(:'zoe'), :'zoe'::uuid, 'erasing again is safe');
reset role;
select is((select count(*)::int from privacy.erasures where user_id = :'zoe'), 1, 'the erasure is recorded once');
select is((select count(*)::int from audit.platform_actions where action = 'privacy.erasure.insert' and target_id = :'zoe'
             and actor_id = :'dpo'), 1, 'and audited, with who did it');
-- No inventoried column still holds Zoe's data.
select is((select count(*)::int from identity.users where id = :'zoe'
             and coalesce(username, first_name, last_name, phone_number, personal_city, email) is null
             and education = '[]' and deleted_at is not null), 1, 'the profile holds nothing personal');
select is((select count(*)::int from identity.sessions where user_id = :'zoe') + (select count(*)::int from identity.accounts where user_id = :'zoe')
          + (select count(*)::int from identity.verifications where identifier ilike 'zoe%'), 0, 'sessions, credentials and codes are gone');
select ok(position('Zoe' in export_user_data(:'zoe')::text) = 0 and position('zoe.subject' in lower(export_user_data(:'zoe')::text)) = 0
          and position('Lisbon' in export_user_data(:'zoe')::text) = 0,
  'nothing the inventory lists mentions her any more (names, email, city)');
select is((select count(*)::int from tenancy.invitations where lower(email) like 'zoe%'), 0, 'invitations to her address are anonymized');
select is((select amount_minor from billing.credit_ledger where idempotency_key = 'zoe-promo')::bigint, 700::bigint,
  'the ledger keeps its amounts');

-- A second erased invitee of the same organization does not collide with the first.
select tests.user('yan@example.test') as yan \gset
select tests.act_as(:'other');
select count(*) from invite_member(:'oorg', 'yan@example.test');
reset role;
select lives_ok(format($$select erase_user(%L)$$, :'yan'), 'erasing two invitees of one organization');

set local role service_role;
select throws_ok($$update privacy.data_inventory set erase_with = null$$, '42501', null, 'the inventory is not writable by the back end');
reset role;

select * from finish();
rollback;
