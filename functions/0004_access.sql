-- Tenant permission helpers: used by every tenant table's RLS policies.
{% import 'sql/macros.sql' as m with context %}

-- private.permission_usable(organization_id uuid, permission text) -> boolean
-- Whether the organization's status lets members use the permission: all
-- of them while active; only *.read and *.view while suspended (read-only);
-- none once deleted. Refuses nothing. Used by the helpers below.
create or replace function private.permission_usable(organization_id uuid, permission text)
  returns boolean
  language sql
  stable
  {{ m.definer() }}
as $fn$
  select exists (
    select from tenancy.organizations o
     where o.id = permission_usable.organization_id
       and (o.status = 'active'
            or (o.status = 'suspended' and (permission_usable.permission like '%.read' or permission_usable.permission like '%.view'))))
$fn$;
comment on function private.permission_usable is 'Whether an organization''s status admits a permission: all when active, *.read/*.view when suspended, none when deleted.';
{{ m.private_grants('permission_usable', 'service_role') }}

-- private.org_ids_with_permission(permission text) -> uuid[]
-- Returns the organizations in which the caller's active membership carries
-- the tenant permission and the organization's status admits it (empty when
-- signed out). Refuses nothing. Callable by authenticated and service_role;
-- the RLS policies call it once per statement (see macro in_orgs_with).
create or replace function private.org_ids_with_permission(permission text)
  returns uuid[]
  language sql
  stable
  {{ m.definer() }}
as $fn$
  -- The request check runs once, not once per membership row.
  select case when private.request_is_valid() then (
    select coalesce(array_agg(m.organization_id), '{}')
      from tenancy.memberships m
      join iam.role_permissions rp on rp.role_key = m.role_key
     where m.user_id = auth.uid()
       and m.status = 'active'
       and rp.permission_key = org_ids_with_permission.permission
       and not rp.permission_is_platform
       and private.permission_usable(m.organization_id, org_ids_with_permission.permission))
  else '{}' end
$fn$;
comment on function private.org_ids_with_permission is 'The organizations where the caller''s membership carries a tenant permission; the core of every tenant RLS policy.';
{{ m.private_grants('org_ids_with_permission') }}

-- private.user_has_permission(organization_id uuid, user_id uuid, permission text) -> boolean
-- Whether that user's active membership in the organization carries the
-- tenant permission and the organization's status admits it. Never
-- consults system role grants. Callable by service_role (and the functions
-- here); clients use has_permission, which asks about the caller.
create or replace function private.user_has_permission(organization_id uuid, user_id uuid, permission text)
  returns boolean
  language sql
  stable
  {{ m.definer() }}
as $fn$
  select exists (
    select
      from tenancy.memberships m
      join iam.role_permissions rp on rp.role_key = m.role_key
     where m.organization_id = user_has_permission.organization_id
       and m.user_id = user_has_permission.user_id
       and m.status = 'active'
       and rp.permission_key = user_has_permission.permission
       and not rp.permission_is_platform)
    and private.permission_usable(user_has_permission.organization_id, user_has_permission.permission)
$fn$;
comment on function private.user_has_permission is 'Whether a user''s membership in an organization carries a tenant permission.';
{{ m.private_grants('user_has_permission', 'service_role') }}

-- private.has_permission(organization_id uuid, permission text) -> boolean
-- Returns whether the caller's active membership in the organization
-- carries the tenant permission (see user_has_permission).
-- Callable by authenticated and service_role.
create or replace function private.has_permission(organization_id uuid, permission text)
  returns boolean
  language sql
  stable
  {{ m.definer() }}
as $fn$
  select auth.uid() is not null
     and private.user_has_permission(has_permission.organization_id, auth.uid(), has_permission.permission)
     and private.request_is_valid()
$fn$;
comment on function private.has_permission is 'Definer twin of has_permission: reads memberships regardless of RLS.';
{{ m.private_grants('has_permission') }}
{{ m.api_function('has_permission', 'organization_id uuid, permission text', 'boolean', 'organization_id, permission',
   'Returns whether the caller''s membership in the organization carries the tenant permission (suspended organizations: *.read and *.view only). Never consults platform grants. Callable by authenticated users.') }}

-- private.require_permission(organization_id uuid, permission text) -> void
-- Returns nothing when the caller holds the tenant permission; refuses with
-- 42501 otherwise (also when signed out). Used by the tenancy functions.
create or replace function private.require_permission(organization_id uuid, permission text)
  returns void
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
begin
  if auth.uid() is null then
    raise exception 'sign-in required' using errcode = '42501';
  end if;
  if not private.has_permission(organization_id, permission) then
    raise exception 'permission % is required in organization %', permission, organization_id
      using errcode = '42501';
  end if;
end
$fn$;
comment on function private.require_permission is 'Raises 42501 unless the caller holds the tenant permission in the organization.';
{{ m.private_grants('require_permission', 'service_role') }}
