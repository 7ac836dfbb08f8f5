-- iam: the three invariants of seed 002, scope separation, the helpers.
begin;
\ir _helpers.psql
select plan(24);

select tests.user('owner@a.test') as owner \gset
select tests.user('staff@p.test') as staff \gset
select tests.personal_org(:'owner') as org \gset

-- Invariant 1: no system role in a membership.
select throws_ok(
  format($$insert into tenancy.memberships (organization_id, user_id, role_key) values (%L, %L, 'platform_admin')$$, :'org', :'staff'),
  '23503', null, 'a system role cannot be put into a membership (memberships_role_fk)');
select throws_ok(
  format($$insert into tenancy.memberships (organization_id, user_id, role_key, role_is_system) values (%L, %L, 'platform_admin', true)$$, :'org', :'staff'),
  '23514', null, 'claiming role_is_system in a membership is refused (memberships_role_is_tenant_role)');
select throws_ok(
  format($$update tenancy.memberships set role_key = 'platform_superadmin' where user_id = %L$$, :'owner'),
  '23503', null, 'a membership cannot be switched to a system role');

-- Invariant 2: only system roles in grants.
select throws_ok(
  format($$insert into iam.system_role_grants (user_id, role_key, reason) values (%L, 'tenant_owner', 'x')$$, :'staff'),
  '23503', null, 'a tenant role cannot be granted as a system role (system_role_grants_role_fk)');
select throws_ok(
  format($$insert into iam.system_role_grants (user_id, role_key, role_is_system, reason) values (%L, 'tenant_owner', false, 'x')$$, :'staff'),
  '23514', null, 'role_is_system = false in a grant is refused');

-- Invariant 3: one active grant per user and role.
select lives_ok(format($$select tests.grant_system_role(%L, 'platform_support')$$, :'staff'), 'first grant');
select throws_ok(format($$select tests.grant_system_role(%L, 'platform_support')$$, :'staff'),
  '23505', null, 'a second active grant of the same role is refused');
select lives_ok(format($$update iam.system_role_grants set revoked_at = now(), revoke_reason = 'rotation' where user_id = %L$$, :'staff'),
  'revoking with a reason');
select lives_ok(format($$select tests.grant_system_role(%L, 'platform_support')$$, :'staff'), 'granting again after revocation');
select throws_ok(
  format($$update iam.system_role_grants set revoked_at = now() where user_id = %L and revoked_at is null$$, :'staff'),
  '23514', null, 'a revocation without a reason is refused');
select throws_ok(
  format($$insert into iam.system_role_grants (user_id, role_key, reason) values (%L, 'platform_admin', '  ')$$, :'staff'),
  '23514', null, 'a grant without a reason is refused');

-- Scope: tenant roles carry tenant permissions only, and the reverse.
select throws_ok(
  $$insert into iam.role_permissions (role_key, role_is_system, permission_key, permission_is_platform) values ('tenant_owner', false, 'platform.tenant.read', true)$$,
  '23514', null, 'a tenant role cannot carry a platform permission');
select throws_ok(
  $$insert into iam.permissions (key, is_platform) values ('platform.thing', false)$$,
  '23514', null, 'a platform.* permission must be marked platform');
select is((select count(*)::int from iam.role_permissions rp where rp.role_is_system <> rp.permission_is_platform), 0,
  'seeded mappings never cross scopes');

-- Helpers: tenant and platform permissions are resolved separately.
select tests.act_as(:'owner');
select ok(has_permission(:'org', 'tenant.delete'), 'the owner holds tenant.delete in their organization');
select ok(not has_system_permission('platform.tenant.read'), 'an owner holds no platform permission');
select ok(not is_platform_team_member(), 'an owner is not platform staff');
select is(platform_account_type(), 'user', 'an owner''s account type is user');
select throws_ok(format($$select platform_account_type(%L)$$, :'staff'), '42501', null,
  'a non-staff user cannot look up another user''s account type');
reset role;

select tests.act_as(:'staff');
select ok(has_system_permission('platform.user.impersonate'), 'support staff hold platform.user.impersonate');
select ok(not has_permission(:'org', 'tenant.read'), 'platform staff get no tenant permission from their grant');
select is(platform_account_type(), 'admin', 'a support grant makes the account type admin');
select throws_ok($$select platform_account_type('00000000-0000-0000-0000-000000000000')$$, 'P0002', null,
  'platform staff asking about an unknown user get P0002');
reset role;

update iam.system_role_grants set granted_at = now() - interval '2 hours', expires_at = now() - interval '1 hour'
 where user_id = :'staff' and revoked_at is null;
select tests.act_as(:'staff');
select ok(not is_platform_team_member(), 'an expired grant confers nothing');
reset role;

select * from finish();
rollback;
