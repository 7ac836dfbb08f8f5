-- Tenant permission helpers: used by every tenant table's RLS policies.
{% import 'sql/macros.sql' as m with context %}

-- permission_usable (the status rule, one definer call per membership
-- row) gave way to the status rule inside the two helpers below.
drop function if exists private.permission_usable(uuid, text);

-- private.org_ids_with_permission(permission text) -> uuid[]
-- Returns the organizations in which the caller's active membership carries
-- the tenant permission and the organization's status admits it (empty when
-- signed out, or when the request's impersonation claim is not valid).
-- Refuses nothing. Callable by authenticated and service_role; the RLS
-- policies call it once per statement (see macro in_orgs_with), so it is
-- the fixed cost of every tenant read, and is written for that:
--   * the roles that carry the permission (iam.role_permissions, a
--     handful), then one index range scan of private.tenant_access per
--     role: the caller's memberships holding it (one row per membership,
--     kept exact at commit by functions/0019_access_per_membership.sql).
--     Both are read in the statement's snapshot, so a revoked membership
--     or permission stops reading in the next statement;
--   * a request scoped to its active organization (role
--     organization_scoped, see scope_request) gets that organization or
--     nothing: one primary-key lookup instead of all the member's;
--   * the status rule: every permission while the organization is active,
--     only read permissions (*.read, *.view) while it is suspended, none
--     once it is deleted (user_has_permission states it the same way);
--   * PL/pgSQL with a generic plan: its plan is made once per session and
--     reused. A SQL function is planned again on every call before
--     PostgreSQL 18, and left to choose, the plan cache re-plans this
--     query on every call too (the custom plan looks cheaper); planning
--     was most of the cost (bench/rls_scale.sh).
create or replace function private.org_ids_with_permission(permission text)
  returns uuid[]
  language plpgsql
  stable
  {{ m.definer() }}
  set plan_cache_mode = force_generic_plan
as $fn$
declare
  caller uuid := auth.uid();
  read_only boolean := org_ids_with_permission.permission ~ '[.](read|view)$';
  scoped_to uuid;
  found_ids uuid[];
begin
  if caller is null or not private.request_is_valid() then
    return '{}';
  end if;
  if current_setting('role') = 'organization_scoped' then
    -- A request scoped to its active organization reads no other: one
    -- primary-key lookup, whatever the member's count of organizations.
    scoped_to := private.active_organization();
    select coalesce(array_agg(a.organization_id), '{}')
      into found_ids
      from private.tenant_access a
     where a.organization_id = scoped_to
       and a.user_id = caller
       and exists (select from iam.role_permissions rp
                    where rp.role_key = a.role_key and rp.permission_key = org_ids_with_permission.permission
                      and not rp.permission_is_platform)
       and (a.organization_status = 'active' or (read_only and a.organization_status = 'suspended'));
    return found_ids;
  end if;
  select coalesce(array_agg(a.organization_id), '{}')
    into found_ids
    from private.tenant_access a
   where a.user_id = caller
     and a.role_key = any (array(select rp.role_key from iam.role_permissions rp
                                  where rp.permission_key = org_ids_with_permission.permission
                                    and not rp.permission_is_platform))
     and (a.organization_status = 'active' or (read_only and a.organization_status = 'suspended'));
  return found_ids;
end
$fn$;
comment on function private.org_ids_with_permission is 'The organizations where the caller''s membership carries a tenant permission; the core of every tenant RLS policy (once per statement).';
{{ m.private_grants('org_ids_with_permission') }}

-- private.user_has_permission(organization_id uuid, user_id uuid, permission text) -> boolean
-- Whether that user's active membership in the organization carries the
-- tenant permission and the organization's status admits it. Never
-- consults system role grants. Callable by service_role (and the functions
-- here); clients use has_permission, which asks about the caller.
create or replace function private.user_has_permission(organization_id uuid, user_id uuid, permission text)
  returns boolean
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
declare
  read_only boolean := user_has_permission.permission ~ '[.](read|view)$';
begin
  return exists (
    select
      from private.tenant_access a
      join iam.role_permissions rp on rp.role_key = a.role_key and rp.permission_key = user_has_permission.permission
     where a.organization_id = user_has_permission.organization_id
       and a.user_id = user_has_permission.user_id
       and not rp.permission_is_platform
       and (a.organization_status = 'active' or (read_only and a.organization_status = 'suspended')));
end
$fn$;
comment on function private.user_has_permission is 'Whether a user''s membership in an organization carries a tenant permission.';
{{ m.private_grants('user_has_permission', 'service_role') }}

-- private.has_permission(organization_id uuid, permission text) -> boolean
-- Returns whether the caller's active membership in the organization
-- carries the tenant permission (see user_has_permission); false for any
-- other organization than the active one of a request scoped to it (role
-- organization_scoped), so the API functions that ask it act in the
-- active organization only. Callable by authenticated and service_role.
create or replace function private.has_permission(organization_id uuid, permission text)
  returns boolean
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
begin
  return (
    select auth.uid() is not null
       and (current_setting('role') <> 'organization_scoped' or has_permission.organization_id = private.active_organization())
       and private.user_has_permission(has_permission.organization_id, auth.uid(), has_permission.permission)
       and private.request_is_valid());
end
$fn$;
comment on function private.has_permission is 'Definer twin of has_permission: reads memberships regardless of RLS.';
{{ m.private_grants('has_permission') }}
{{ m.api_function('has_permission', 'p_organization_id uuid, p_permission text', 'boolean', 'p_organization_id, p_permission',
   'Returns whether the caller\'s membership in the organization carries the tenant permission (suspended organizations: *.read and *.view only). Never consults platform grants. Callable by authenticated users.', stable=true) }}

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

-- private.active_organization() -> uuid
-- Returns the organization the request names as its active one: the
-- token's organization_id claim, else the X-Organization-Id header
-- (PostgREST's request.headers); null when neither names a uuid. Refuses
-- nothing (scope_request refuses a malformed or foreign one up front).
-- org_ids_with_permission answers a scoped request with it (or nothing).
-- Callable by authenticated, organization_scoped (mirrored) and
-- service_role.
create or replace function private.active_organization()
  returns uuid
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
declare
  named text := coalesce(nullif(auth.jwt() ->> 'organization_id', ''),
                         nullif(nullif(current_setting('request.headers', true), '')::jsonb ->> 'x-organization-id', ''));
begin
  if named ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
    return named::uuid;
  end if;
  return null;
end
$fn$;
comment on function private.active_organization is 'The request''s active organization (claim organization_id, else header X-Organization-Id), or null; org_ids_with_permission answers a scoped request with it.';
{{ m.private_grants('active_organization') }}

-- private.is_active_member(organization_id uuid) -> boolean
-- Whether the caller's membership in the organization is active and the
-- organization not deleted (a suspended one is readable). Refuses nothing.
-- Callable by authenticated and service_role (scope_request asks it).
create or replace function private.is_active_member(organization_id uuid)
  returns boolean
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
begin
  return auth.uid() is not null
     and private.request_is_valid()
     and exists (select from private.tenant_access a
                  where a.organization_id = is_active_member.organization_id
                    and a.user_id = auth.uid()
                    and a.organization_status in ('active', 'suspended'));
end
$fn$;
comment on function private.is_active_member is 'Whether the caller is an active member of a (not deleted) organization.';
{{ m.private_grants('is_active_member') }}

-- scope_request() -> void
-- PostgREST's pre-request function (db-pre-request; Supabase:
-- alter role authenticator set pgrst.db_pre_request = '<api>.scope_request').
-- A signed-in request that names an active organization (token claim
-- organization_id or header X-Organization-Id) is switched to the role
-- organization_scoped for its transaction: it sees and writes that
-- organization's rows only, and a list page of a big organization costs
-- what the page holds. Any other request is left as it is.
-- Refuses: 22023 when the claim and the header name different
-- organizations; 22P02 when the name is not a uuid; 42501 when the caller
-- is not an active member of it. Callable by every role PostgREST switches
-- to (it runs before every request).
create or replace function {{ api }}.scope_request()
  returns void
  language plpgsql
  security invoker
  {{ m.pinned() }}
as $fn$
declare
  claimed text;
  header text;
  named uuid;
begin
  -- Other roles first, before anything they may not read (platform_staff
  -- has no usage on schema auth).
  if current_setting('role') <> 'authenticated' then
    return;
  end if;
  claimed := nullif(auth.jwt() ->> 'organization_id', '');
  header := nullif(nullif(current_setting('request.headers', true), '')::jsonb ->> 'x-organization-id', '');
  if coalesce(claimed, header) is null then
    return;
  end if;
  named := private.active_organization();
  if claimed is not null and header is not null and lower(claimed) <> lower(header) then
    raise exception 'the token names organization % and the X-Organization-Id header names %', claimed, header
      using errcode = '22023', hint = 'Send one active organization: drop the header, or use a token for that organization.';
  end if;
  if named is null then
    raise exception 'the active organization must be a uuid, not "%"', coalesce(claimed, header)
      using errcode = '22P02';
  end if;
  if not private.is_active_member(named) then
    raise exception 'you are not an active member of organization %', named
      using errcode = '42501', hint = 'Name one of your organizations, or none to read all of them.';
  end if;
  perform pg_catalog.set_config('role', 'organization_scoped', true);
end
$fn$;
comment on function {{ api }}.scope_request is 'PostgREST pre-request: a signed-in request naming an active organization (claim organization_id or header X-Organization-Id) runs as organization_scoped, narrowed to it. Refuses 22023 (claim and header differ), 22P02 (not a uuid), 42501 (not an active member).';
revoke all on function {{ api }}.scope_request from public;
grant execute on function {{ api }}.scope_request to anon, authenticated, service_role, platform_staff;
