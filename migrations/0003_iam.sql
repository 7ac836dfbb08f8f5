-- 0003 iam: roles, permissions, their mapping, and platform role grants.
-- The invariants of seed 002 are constraints, not code:
--   * a membership can only hold a tenant role  (tenancy.memberships FK)
--   * a grant can only hold a system role       (system_role_grants FK)
--   * a role maps only to permissions of its own scope (role_permissions FKs)
--   * one active grant per (user, role)          (partial unique index)
{% import 'sql/macros.sql' as m with context %}

create table iam.roles (
  key text primary key,
  name text not null,
  description text,
  is_system boolean not null,
  is_break_glass boolean not null default false,
  created_at timestamptz not null default now(),
  constraint roles_key_format check (key ~ '^[a-z][a-z0-9_]*$'),
  constraint roles_break_glass_is_system check (not is_break_glass or is_system),
  constraint roles_key_scope_unique unique (key, is_system)
);
comment on table iam.roles is 'Role catalog: tenant roles (is_system = false) held through memberships, platform roles (is_system = true) held through system_role_grants.';
comment on column iam.roles.is_system is 'true: a platform role, granted only in iam.system_role_grants; false: a tenant role, held only in memberships.';
comment on column iam.roles.is_break_glass is 'An emergency platform role: its grants are for incidents only.';
{{ m.table_grants('iam.roles', 'select') }}

create table iam.permissions (
  key text primary key,
  description text,
  is_platform boolean not null,
  constraint permissions_key_format check (key ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$'),
  constraint permissions_platform_prefix check (is_platform = (key like 'platform.%')),
  constraint permissions_key_scope_unique unique (key, is_platform)
);
comment on table iam.permissions is 'Atomic actions. Platform permissions (platform.*) are resolved only from system role grants, tenant permissions only from memberships; the two are never unioned.';
comment on column iam.permissions.is_platform is 'true for platform.* permissions; derived from the key and checked.';
{{ m.table_grants('iam.permissions', 'select') }}

create table iam.role_permissions (
  role_key text not null,
  role_is_system boolean not null,
  permission_key text not null,
  permission_is_platform boolean not null,
  primary key (role_key, permission_key),
  constraint role_permissions_role_fk foreign key (role_key, role_is_system)
    references iam.roles (key, is_system) on update cascade on delete cascade,
  constraint role_permissions_permission_fk foreign key (permission_key, permission_is_platform)
    references iam.permissions (key, is_platform) on update cascade on delete cascade,
  constraint role_permissions_same_scope check (role_is_system = permission_is_platform)
);
create index role_permissions_role on iam.role_permissions (role_key, role_is_system);
create index role_permissions_permission on iam.role_permissions (permission_key, permission_is_platform);
comment on table iam.role_permissions is 'Which permissions a role carries. A tenant role carries only tenant permissions and a system role only platform permissions (role_permissions_same_scope).';
comment on column iam.role_permissions.role_is_system is 'Copy of roles.is_system, kept true by the foreign key; lets the scope rule be a CHECK.';
comment on column iam.role_permissions.permission_is_platform is 'Copy of permissions.is_platform, kept true by the foreign key.';
{{ m.table_grants('iam.role_permissions', 'select') }}

create table iam.system_role_grants (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references identity.users (id) on delete cascade,
  role_key text not null,
  role_is_system boolean not null default true,
  granted_by uuid references identity.users (id) on delete set null,
  reason text not null,
  granted_at timestamptz not null default now(),
  expires_at timestamptz,
  revoked_at timestamptz,
  revoked_by uuid references identity.users (id) on delete set null,
  revoke_reason text,
  constraint system_role_grants_role_is_system_role check (role_is_system),
  constraint system_role_grants_role_fk foreign key (role_key, role_is_system)
    references iam.roles (key, is_system) on update cascade,
  constraint system_role_grants_reason_given check (length(btrim(reason)) > 0),
  constraint system_role_grants_revocation_complete check (
    (revoked_at is null and revoked_by is null and revoke_reason is null)
    or (revoked_at is not null and length(btrim(coalesce(revoke_reason, ''))) > 0)),
  constraint system_role_grants_expiry_after_grant check (expires_at is null or expires_at > granted_at)
);
create unique index system_role_grants_one_active_per_user_role
  on iam.system_role_grants (user_id, role_key) where revoked_at is null;
create index system_role_grants_role on iam.system_role_grants (role_key, role_is_system);
create index system_role_grants_granted_by on iam.system_role_grants (granted_by);
create index system_role_grants_revoked_by on iam.system_role_grants (revoked_by);
comment on table iam.system_role_grants is 'The single source of platform access: who holds which system role, who granted it, why, until when, and its revocation.';
comment on column iam.system_role_grants.role_is_system is 'Always true (system_role_grants_role_is_system_role); with the foreign key it admits only system roles.';
comment on column iam.system_role_grants.expires_at is 'Optional end of the grant; an expired grant confers nothing.';
{{ m.table_grants('iam.system_role_grants', 'select') }}

-- The roles the schema's own functions name (signup makes a tenant_owner,
-- transfer_ownership a tenant_admin, platform_account_type reads
-- platform_superadmin). Their permissions come from `tenantdb seed`.
insert into iam.roles (key, name, is_system) values
  ('tenant_owner', 'Owner', false),
  ('tenant_admin', 'Admin', false),
  ('tenant_member', 'Member', false),
  ('platform_superadmin', 'Platform superadmin', true);
