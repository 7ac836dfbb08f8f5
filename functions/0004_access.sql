-- Tenant permission helpers: used by every tenant table's RLS policies.
{% import 'sql/macros.sql' as m with context %}

-- private.org_ids_with_permission(permission text) -> uuid[]
-- Returns the organizations in which the caller's active membership carries
-- the tenant permission (empty when signed out). Refuses nothing.
-- Callable by authenticated and service_role; the RLS policies call it once
-- per statement (see macro in_orgs_with).
create or replace function private.org_ids_with_permission(permission text)
  returns uuid[]
  language sql
  stable
  security definer
  set search_path = ''
as $fn$
  select coalesce(array_agg(m.organization_id), '{}')
    from tenancy.memberships m
    join iam.role_permissions rp on rp.role_key = m.role_key
   where m.user_id = auth.uid()
     and m.status = 'active'
     and rp.permission_key = org_ids_with_permission.permission
     and not rp.permission_is_platform
$fn$;
comment on function private.org_ids_with_permission is 'The organizations where the caller''s membership carries a tenant permission; the core of every tenant RLS policy.';
{{ m.private_grants('org_ids_with_permission') }}

-- private.has_permission(organization_id uuid, permission text) -> boolean
-- Returns whether the caller's active membership in the organization
-- carries the tenant permission. Never consults system role grants.
-- Callable by authenticated and service_role.
create or replace function private.has_permission(organization_id uuid, permission text)
  returns boolean
  language sql
  stable
  security definer
  set search_path = ''
as $fn$
  select exists (
    select
      from tenancy.memberships m
      join iam.role_permissions rp on rp.role_key = m.role_key
     where m.organization_id = has_permission.organization_id
       and m.user_id = auth.uid()
       and m.status = 'active'
       and rp.permission_key = has_permission.permission
       and not rp.permission_is_platform)
$fn$;
comment on function private.has_permission is 'Definer twin of has_permission: reads memberships regardless of RLS.';
{{ m.private_grants('has_permission') }}
{{ m.api_function('has_permission', 'organization_id uuid, permission text', 'boolean', 'organization_id, permission',
   'Returns whether the caller''s membership in the organization carries the tenant permission. Never consults platform grants. Callable by authenticated users.') }}

-- private.require_permission(organization_id uuid, permission text) -> void
-- Returns nothing when the caller holds the tenant permission; refuses with
-- 42501 otherwise (also when signed out). Used by the tenancy functions.
create or replace function private.require_permission(organization_id uuid, permission text)
  returns void
  language plpgsql
  stable
  security definer
  set search_path = ''
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
