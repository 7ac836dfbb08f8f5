-- identity: signup provisioning, user names, onboarding.
begin;
\ir _helpers.psql
select plan(27);

select tests.user('Ada.Lovelace@example.test', '{"full_name": "Ada Lovelace"}') as ada \gset
select tests.user('ada.lovelace@other.test') as ada2 \gset

-- Signup made a profile, a personal organization and an owner membership.
select is((select email from identity.users where id = :'ada'), 'Ada.Lovelace@example.test', 'signup makes the profile');
select is((select count(*)::int from tenancy.organizations where personal_owner_id = :'ada' and is_personal and org_type = 'personal'), 1,
  'signup makes exactly one personal organization');
select is((select role_key from tenancy.memberships where organization_id = tests.personal_org(:'ada') and user_id = :'ada'), 'tenant_owner',
  'the user owns their personal organization');
select is((select name from tenancy.organizations where id = tests.personal_org(:'ada')), 'Ada Lovelace''s workspace',
  'the personal organization is named after the user');
select isnt(tests.personal_org(:'ada'), tests.personal_org(:'ada2'), 'the same email local part still gives two organizations');
select matches((select slug from tenancy.organizations where id = tests.personal_org(:'ada2')), '^ada-lovelace-[0-9a-f]{12}$',
  'the personal slug is the local part plus the id');
select is(private.provision_user(:'ada', 'x@y.test', '{}'), tests.personal_org(:'ada'), 'provisioning again returns the same organization');
select is((select count(*)::int from tenancy.memberships where user_id = :'ada'), 1, 'provisioning again adds nothing');
select throws_ok(
  format($$insert into tenancy.organizations (name, slug, org_type, is_personal, personal_owner_id) values ('x', 'second-personal', 'personal', true, %L)$$, :'ada'),
  '23505', null, 'a second personal organization is refused (organizations_one_personal_per_user)');

-- User names.
update identity.users set username = 'Ada_L' where id = :'ada';
select tests.act_as(:'ada2');
select ok(check_username_available('grace_h'), 'a free, well-formed name is available');
select ok(not check_username_available('ada_l'), 'a taken name is unavailable, whatever its case');
select ok(not check_username_available('Admin'), 'a reserved name is unavailable, whatever its case');
select ok(not check_username_available('1abc'), 'a malformed name is unavailable');
select throws_ok($$select check_username_available(null)$$, '22023', null, 'a null name is refused');
select throws_ok(format($$update identity.users set username = 'ADA_l' where id = %L$$, :'ada2'), '23505', null,
  'a name taken in another case is refused (users_username_unique_ci)');
select throws_ok(format($$update identity.users set username = 'Support' where id = %L$$, :'ada2'), '23514',
  'user name "Support" is reserved', 'a reserved name is refused with its reason');
select throws_ok(format($$update identity.users set username = 'a b' where id = %L$$, :'ada2'), '23514', null,
  'a malformed name is refused (users_username_format)');
select is((select count(*)::int from identity.users where id = :'ada'), 0, 'a user cannot see another user''s profile');

-- Onboarding.
select lives_ok(format($$select complete_onboarding(%L)$$, :'ada2'), 'a user completes their own onboarding');
select throws_ok(format($$select complete_onboarding(%L)$$, :'ada'), '42501', null, 'nobody completes another user''s onboarding');
reset role;
select ok((select onboarding_completed and onboarding_completed_at is not null from identity.users where id = :'ada2'),
  'onboarding is recorded with its time');

-- Secrets of the self-hosted auth tables are never readable by clients.
insert into identity.accounts (user_id, provider_id, account_id, password_hash, refresh_token)
values (:'ada2', 'credential', 'ada2', 'hash', 'refresh');
select tests.act_as(:'ada2');
select is((select count(*)::int from identity.accounts), 1, 'a user sees their own account link');
select throws_ok($$select password_hash from identity.accounts$$, '42501', null, 'but not its password hash');
select throws_ok($$select refresh_token from identity.accounts$$, '42501', null, 'nor its refresh token');
reset role;

-- The profile follows an email change; a long name does not break signup.
update auth.users set email = 'ada.new@example.test' where id = :'ada';
select is((select email from identity.users where id = :'ada'), 'ada.new@example.test', 'an email change reaches the profile');
select lives_ok($$select tests.user('long@example.test', jsonb_build_object('full_name', repeat('n', 500)))$$,
  'a 500-character full name does not break signup');

-- Deleting the auth user removes the profile and the personal organization.
delete from auth.users where id = :'ada2';
select is((select count(*)::int from tenancy.organizations where personal_owner_id = :'ada2'), 0,
  'deleting the auth user removes their personal organization');

select * from finish();
rollback;
