-- Seed 002 (tenant vs platform RBAC, roles/permissions seed script): its SQL
-- against a migrated, seeded database.
--
-- The seed script's blocks 1-4 (INSERT INTO roles / permissions /
-- role_permissions by id) are not run: tenantdb's own seed
-- (seeds/0001_iam.sql) loads the same catalog keyed by role and permission
-- key. Instead this file checks that the state they describe holds: every
-- role with its is_system, every permission, and every role's permissions
-- (tenantdb's roles hold the seed's permissions; they may hold more, such as
-- crm.* and usage.record). One deliberate difference: platform_superadmin
-- holds every *platform* permission, not the tenant ones (DESIGN.md: platform
-- staff reach tenant data through platform permissions, never memberships).
-- The seed's triggers (block "mine": no system role in a tenant, only
-- system roles as system grants) are constraints here; their refusals are
-- tested below.
--
-- Block 7 (assign platform superadmin) runs with the names of the README's
-- mapping: system_role_assignments -> iam.system_role_grants,
-- assigned_user_id -> user_id, role_id / r.id -> role_key / r.key,
-- assigned_by -> granted_by, users -> identity.users, roles -> iam.roles.
-- Block 6 (assign tenant owner) is create_organization: a tenant's owner is
-- whoever creates it.
begin;
\ir ../sql/_helpers.psql
select plan(17);

-- Blocks 1: the roles and whether they are system roles.
select bag_has($$select key, is_system from iam.roles$$,
  $$values ('tenant_owner', false), ('tenant_admin', false), ('tenant_member', false), ('tenant_guest', false),
           ('platform_admin', true), ('platform_superadmin', true), ('platform_support', true)$$,
  'block 1: the seed''s roles, tenant ones not system, platform ones system');

-- Block 2: the permissions.
select bag_has($$select key from iam.permissions$$,
  $$values ('tenant.read'), ('tenant.update'), ('tenant.delete'), ('member.invite'), ('member.remove'),
           ('project.create'), ('project.update'), ('project.delete'), ('billing.view'), ('billing.manage'),
           ('platform.tenant.read'), ('platform.tenant.suspend'), ('platform.tenant.delete'), ('platform.billing.adjust'),
           ('platform.plan.manage'), ('platform.user.impersonate'), ('platform.security.view'), ('platform.system.configure')$$,
  'block 2: the seed''s permissions');

-- Blocks 3 and 4: each role holds the seed's permissions.
select bag_has($$select permission_key from iam.role_permissions where role_key = 'tenant_owner'$$,
  $$values ('tenant.read'), ('tenant.update'), ('member.invite'), ('member.remove'), ('project.create'),
           ('project.update'), ('project.delete'), ('billing.view'), ('billing.manage')$$, 'tenant_owner');
select bag_has($$select permission_key from iam.role_permissions where role_key = 'tenant_admin'$$,
  $$values ('tenant.read'), ('member.invite'), ('member.remove'), ('project.create'), ('project.update'), ('billing.view')$$,
  'tenant_admin');
select bag_hasnt($$select permission_key from iam.role_permissions where role_key = 'tenant_admin'$$,
  $$values ('tenant.update'), ('tenant.delete'), ('project.delete'), ('billing.manage')$$,
  'tenant_admin: no destructive tenant operations');
select bag_has($$select permission_key from iam.role_permissions where role_key = 'tenant_member'$$,
  $$values ('tenant.read'), ('project.create'), ('project.update')$$, 'tenant_member');
select bag_hasnt($$select permission_key from iam.role_permissions where role_key = 'tenant_guest'$$,
  $$values ('project.create'), ('project.update'), ('project.delete'), ('tenant.update'), ('member.invite')$$,
  'tenant_guest: read-only');
select bag_has($$select permission_key from iam.role_permissions where role_key = 'platform_support'$$,
  $$values ('platform.tenant.read'), ('platform.user.impersonate'), ('platform.security.view')$$, 'platform_support');
select bag_has($$select permission_key from iam.role_permissions where role_key = 'platform_admin'$$,
  $$values ('platform.tenant.read'), ('platform.tenant.suspend'), ('platform.billing.adjust'), ('platform.plan.manage'),
           ('platform.security.view')$$, 'platform_admin');
select bag_eq($$select permission_key from iam.role_permissions where role_key = 'platform_superadmin'$$,
  $$select key from iam.permissions where key like 'platform.%'$$, 'platform_superadmin: every platform permission');

-- The seed's triggers, as constraints.
select tests.user('owner@example.com') as owner \gset
select tests.user('admin@example.com') as admin \gset
select throws_ok(format($$insert into tenancy.memberships (organization_id, user_id, role_key, role_is_system)
                          values (%L, %L, 'platform_superadmin', true)$$, tests.personal_org(:'owner'), :'admin'),
  '23514', null, 'a system role cannot be assigned to a tenant member');
select throws_ok(format($$insert into iam.system_role_grants (user_id, role_key, role_is_system, reason)
                          values (%L, 'tenant_owner', false, 'test')$$, :'admin'),
  '23514', null, 'only system roles can be granted as system roles');

-- Block 6: a tenant and its owner.
select tests.act_as(:'owner');
select create_organization('Default Workspace', 'default-workspace') as workspace \gset
reset role;
select is((select role_key from tenancy.memberships where organization_id = :'workspace' and user_id = :'owner'),
  'tenant_owner', 'block 6: the creator owns the workspace');

-- Block 7: assign platform superadmin, as the DBA bootstrapping the platform.
INSERT INTO iam.system_role_grants (
  user_id,
  role_key,
  granted_by,
  reason
)
SELECT
  u.id,
  r.key,
  u.id,
  'Initial platform bootstrap'
FROM identity.users u, iam.roles r
WHERE
  u.email = 'admin@example.com'
  AND r.key = 'platform_superadmin';
select is((select count(*)::int from iam.system_role_grants where user_id = :'admin' and role_key = 'platform_superadmin'
            and revoked_at is null), 1, 'block 7: the superadmin grant is active');
select tests.act_as(:'admin');
select is(has_system_permission('platform.system.configure'), true, 'the superadmin holds platform.system.configure');
select is(platform_account_type(), 'super_admin', 'platform_account_type says super_admin');
reset role;
select is((select count(*)::int from audit.platform_actions where action like 'iam.system_role_grant%'), 1,
  'the grant is audited');

select * from finish();
rollback;
