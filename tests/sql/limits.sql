-- Limits (issue 10): length bounds on free text, caps from catalog.limits,
-- a meter's bound per event. Each refusal writes nothing.
begin;
\ir _helpers.psql
select plan(16);

select tests.user('lena@lim.test') as lena \gset
select tests.user('lou@lim.test') as lou \gset
select tests.personal_org(:'lena') as personal \gset
select tests.on_plan(:'personal', 'pro');  -- a seat for an invitee: the refusal below is the email's

-- Length bounds
select tests.act_as(:'lena');
select throws_ok(format($$update identity.users set bio = repeat('x', 5 * 1024 * 1024) where id = %L$$, :'lena'), '23514', null,
  'a 5 MB bio is refused (users_bio_length)');
select is((select bio from identity.users where id = :'lena'), null, 'and the profile is unchanged');
select throws_ok(format($$select invite_member(%L, %L)$$, :'personal', repeat('a', 3000) || '@lim.test'), '23514', null,
  'a 3,000-character invitation email is refused (invitations_email_length)');
select throws_ok($$select give_consent(repeat('p', 20000), 'v1')$$, '23514', null, 'a 20,000-character consent purpose is refused');
reset role;

-- Caps, as data the service role changes
update catalog.limits set value = 2 where key = 'organizations.per_user_per_day';
select tests.act_as(:'lena');
select lives_ok($$select create_organization('One', 'lim-one')$$, 'a first business organization');
select lives_ok($$select create_organization('Two', 'lim-two')$$, 'a second one');
select throws_ok($$select create_organization('Three', 'lim-three')$$, '54000',
  format('limit organizations.per_user_per_day reached for %s: 2 of 2', :'lena'), 'a third one the same day is refused, naming the limit');
select is((select count(*)::int from tenancy.organizations where slug = 'lim-three'), 0, 'and nothing was written');
reset role;

update catalog.limits set value = 2 where key = 'invitations.pending_per_organization';
select id as org_one from tenancy.organizations where slug = 'lim-one' \gset
select tests.on_plan(:'org_one', 'pro');  -- seats for the invitees: the cap below is the pending invitations'
select tests.act_as(:'lena');
select lives_ok(format($$select invite_member(%L, 'a@lim.test')$$, :'org_one'), 'a first pending invitation');
select lives_ok(format($$select invite_member(%L, 'b@lim.test')$$, :'org_one'), 'a second');
select throws_ok(format($$select invite_member(%L, 'c@lim.test')$$, :'org_one'), '54000',
  format('limit invitations.pending_per_organization reached for %s: 2 of 2', :'org_one'), 'a third pending one is refused');
reset role;

update catalog.limits set value = 1 where key = 'subject_requests.per_user_per_day';
select tests.act_as(:'lou');
select lives_ok($$select submit_subject_request('access')$$, 'a subject request');
select throws_ok($$select submit_subject_request('portability')$$, '54000', null, 'a second one the same day is refused');
reset role;

-- The back end is not capped.
select lives_ok($$insert into privacy.subject_requests (user_id, request_type) select id, 'erasure' from identity.users where email = 'lou@lim.test'$$,
  'the back end (a trusted caller: here the unswitched owner session) is not capped');

-- A meter's bound per event
update catalog.meters set max_per_event = 1000 where key = 'api_call';
select tests.act_as(:'lena');
select throws_ok(format($$select record_usage(%L, 'api_call', 1001, 'big')$$, :'personal'), '22023',
  'record_usage: meter api_call takes at most 1000 per event, got 1001', 'a quantity over the meter''s bound is refused');
select throws_ok(format($$select * from record_usage_batch(%L, '[{"feature_key": "api_call", "quantity": 1001, "idempotency_key": "big"}]')$$, :'personal'),
  '22023', 'record_usage_batch: item 1 meter api_call takes at most 1000 per event', 'and in a batch');
reset role;

select * from finish();
rollback;
