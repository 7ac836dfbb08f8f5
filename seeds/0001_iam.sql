-- Seed 002's roles, permissions and role mappings. Idempotent: rows are
-- upserted by key and mappings added where missing; running it twice
-- changes nothing. Seed 001's organization roles map onto these:
-- owner -> tenant_owner, member -> tenant_member, viewer -> tenant_guest.

insert into iam.roles (key, name, description, is_system, is_break_glass) values
  ('tenant_owner', 'Owner', 'Full control inside the organization, billing included.', false, false),
  ('tenant_admin', 'Admin', 'Manages members and projects; no destructive organization operations.', false, false),
  ('tenant_member', 'Member', 'Uses the product inside the organization.', false, false),
  ('tenant_guest', 'Guest', 'Read-only access (seed 001''s viewer).', false, false),
  ('platform_support', 'Platform support', 'Reads tenants, impersonates users for support.', true, false),
  ('platform_admin', 'Platform admin', 'Operations and billing adjustments.', true, false),
  ('platform_superadmin', 'Platform superadmin', 'Every platform permission.', true, false),
  ('platform_break_glass', 'Break glass', 'Emergency access during an incident; every platform permission.', true, true)
on conflict (key) do update
  set name = excluded.name, description = excluded.description, is_break_glass = excluded.is_break_glass
  where (iam.roles.name, iam.roles.description, iam.roles.is_break_glass)
        is distinct from (excluded.name, excluded.description, excluded.is_break_glass);

insert into iam.permissions (key, description, is_platform) values
  ('tenant.read', 'See the organization, its members and its data.', false),
  ('tenant.update', 'Edit the organization''s name, slug and settings.', false),
  ('tenant.delete', 'Delete the organization.', false),
  ('member.invite', 'Invite people and see pending invitations.', false),
  ('member.remove', 'Remove members.', false),
  ('project.create', 'Create projects.', false),
  ('project.update', 'Edit projects.', false),
  ('project.delete', 'Delete projects.', false),
  ('billing.view', 'See subscriptions, invoices and usage.', false),
  ('billing.manage', 'Change plans and payment details.', false),
  ('usage.record', 'Record usage events (metered work done for the organization).', false),
  ('crm.read', 'See the organization''s clients, jobs, invoices, campaigns and reminders.', false),
  ('crm.write', 'Add and edit clients, services and jobs; correct a client''s contact details.', false),
  ('crm.billing', 'Issue client invoices and record their payments.', false),
  ('crm.campaigns', 'Create marketing campaigns and queue their sends.', false),
  ('platform.tenant.read', 'Read any organization.', true),
  ('platform.tenant.suspend', 'Suspend an organization.', true),
  ('platform.tenant.delete', 'Delete an organization.', true),
  ('platform.billing.adjust', 'Post credits and adjust invoices.', true),
  ('platform.plan.manage', 'Change plans and plan features.', true),
  ('platform.user.impersonate', 'Impersonate a user for support.', true),
  ('platform.security.view', 'Read audit and security records.', true),
  ('platform.system.configure', 'Grant system roles and configure the platform.', true),
  ('platform.privacy.manage', 'Handle data-subject requests: export and erase user data.', true)
on conflict (key) do update
  set description = excluded.description
  where iam.permissions.description is distinct from excluded.description;

insert into iam.role_permissions (role_key, role_is_system, permission_key, permission_is_platform)
select r.key, r.is_system, p.key, p.is_platform
  from (values
    ('tenant_owner', 'tenant.read'), ('tenant_owner', 'tenant.update'), ('tenant_owner', 'tenant.delete'),
    ('tenant_owner', 'member.invite'), ('tenant_owner', 'member.remove'),
    ('tenant_owner', 'project.create'), ('tenant_owner', 'project.update'), ('tenant_owner', 'project.delete'),
    ('tenant_owner', 'billing.view'), ('tenant_owner', 'billing.manage'), ('tenant_owner', 'usage.record'),
    ('tenant_owner', 'crm.read'), ('tenant_owner', 'crm.write'), ('tenant_owner', 'crm.billing'), ('tenant_owner', 'crm.campaigns'),
    ('tenant_admin', 'tenant.read'), ('tenant_admin', 'member.invite'), ('tenant_admin', 'member.remove'),
    ('tenant_admin', 'project.create'), ('tenant_admin', 'project.update'), ('tenant_admin', 'billing.view'),
    ('tenant_admin', 'usage.record'),
    ('tenant_admin', 'crm.read'), ('tenant_admin', 'crm.write'), ('tenant_admin', 'crm.billing'), ('tenant_admin', 'crm.campaigns'),
    ('tenant_member', 'tenant.read'), ('tenant_member', 'project.create'), ('tenant_member', 'project.update'),
    ('tenant_member', 'usage.record'),
    ('tenant_member', 'crm.read'), ('tenant_member', 'crm.write'),
    ('tenant_guest', 'tenant.read'), ('tenant_guest', 'crm.read'),
    ('platform_support', 'platform.tenant.read'), ('platform_support', 'platform.user.impersonate'),
    ('platform_support', 'platform.security.view'),
    ('platform_admin', 'platform.tenant.read'), ('platform_admin', 'platform.tenant.suspend'),
    ('platform_admin', 'platform.billing.adjust'), ('platform_admin', 'platform.plan.manage'),
    ('platform_admin', 'platform.security.view'), ('platform_admin', 'platform.privacy.manage')
  ) as m (role_key, permission_key)
  join iam.roles r on r.key = m.role_key
  join iam.permissions p on p.key = m.permission_key
union all
-- Superadmin and break-glass: every platform permission (tenant permissions
-- are never given to a system role: role_permissions_same_scope).
select r.key, r.is_system, p.key, p.is_platform
  from iam.roles r
  join iam.permissions p on p.is_platform
 where r.key in ('platform_superadmin', 'platform_break_glass')
on conflict do nothing;
