-- iam: platform permission helpers. Tenant permission helpers need
-- tenancy.memberships and live in functions/0004_access.sql.
{% import 'sql/macros.sql' as m with context %}

-- private.request_is_valid() -> boolean
-- False when the request carries an impersonation_session claim that does
-- not name an active session for the signed-in user (ended, expired, or
-- someone else's), or whose impersonator no longer holds
-- platform.user.impersonate (revoked, expired, or the account deleted);
-- true otherwise. Every permission helper requires it, so such a token
-- opens nothing. Refuses nothing.
create or replace function private.request_is_valid()
  returns boolean
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
declare
  claimed text := auth.jwt() ->> 'impersonation_session';
begin
  if claimed is null then
    return true;
  end if;
  if to_regclass('audit.impersonation_sessions') is null then
    return false;
  end if;
  return exists (select from audit.impersonation_sessions s
                  where s.id::text = claimed and s.target_user_id = auth.uid() and s.expires_at > now()
                    and not exists (select from audit.impersonation_endings e where e.session_id = s.id)
                    and private.user_has_system_permission(s.impersonator_id, 'platform.user.impersonate'));
end
$fn$;
comment on function private.request_is_valid is 'False for a request whose impersonation_session claim is not an active session of the signed-in user.';
{{ m.private_grants('request_is_valid', 'service_role') }}

-- private.is_trusted_caller() -> boolean
-- Whether the caller is the back end: service_role (PostgREST's service
-- key), or a session of a role that bypasses RLS with no role switched
-- (migrations, cron, psql as the owner). Decided by the database role in
-- force, never by the JWT's role claim: a request switched to
-- authenticated whose claims say service_role is not trusted. The one
-- definition of a trusted caller; every function asks it. Refuses nothing.
create or replace function private.is_trusted_caller()
  returns boolean
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
begin
  return (
    select case current_setting('role')
             when 'service_role' then true
             when 'none' then exists (select from pg_catalog.pg_roles r
                                       where r.rolname = session_user and (r.rolsuper or r.rolbypassrls))
             else false
           end);
end
$fn$;
comment on function private.is_trusted_caller is 'True for service_role and for an unswitched session of a role that bypasses RLS.';
{{ m.private_grants('is_trusted_caller', 'service_role') }}

-- private.break_glass_active(grant_id uuid) -> boolean
-- Whether the break-glass grant has an unexpired activation
-- (audit.break_glass_events). A break-glass grant confers nothing until it
-- is activated with a reason (activate_break_glass).
create or replace function private.break_glass_active(grant_id uuid)
  returns boolean
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
begin
  if to_regclass('audit.break_glass_events') is null then
    return false;
  end if;
  return exists (select from audit.break_glass_events b where b.grant_id = break_glass_active.grant_id and b.expires_at > now());
end
$fn$;
comment on function private.break_glass_active is 'Whether a break-glass grant is activated right now.';
{{ m.private_grants('break_glass_active', 'service_role') }}

-- private.user_has_system_permission(user_id uuid, permission text) -> boolean
-- Whether that user holds an active, unexpired grant of a system role
-- carrying the platform permission (a break-glass grant only while
-- activated). Refuses nothing. Internal: has_system_permission asks it
-- about the caller, request_is_valid about an impersonator.
create or replace function private.user_has_system_permission(user_id uuid, permission text)
  returns boolean
  language plpgsql
  stable
  {{ m.definer() }}
  set plan_cache_mode = force_generic_plan
as $fn$
-- PL/pgSQL with a generic plan, like org_ids_with_permission: the staff
-- policies reach it once per statement, and its plan is made once per session.
begin
  return exists (
    select
      from iam.system_role_grants g
      join iam.roles r on r.key = g.role_key
      join iam.role_permissions rp on rp.role_key = g.role_key
     where g.user_id = user_has_system_permission.user_id
       and g.revoked_at is null
       and (g.expires_at is null or g.expires_at > now())
       and rp.permission_key = user_has_system_permission.permission
       and rp.permission_is_platform
       and (not r.is_break_glass or private.break_glass_active(g.id)));
end
$fn$;
comment on function private.user_has_system_permission is 'Internal: whether a user holds a platform permission through an active system role grant.';
revoke all on function private.user_has_system_permission from public, anon, authenticated;

-- private.has_system_permission(permission text) -> boolean
-- Returns whether the caller (auth.uid()) holds the platform permission
-- (user_has_system_permission) and the request's impersonation claim, if
-- any, is valid. Refuses nothing; null caller or tenant permission: false.
-- Callable by authenticated, platform_staff (its policies) and service_role.
create or replace function private.has_system_permission(permission text)
  returns boolean
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
declare
  caller uuid := auth.uid();
begin
  return caller is not null
     and private.user_has_system_permission(caller, has_system_permission.permission)
     and private.request_is_valid();
end
$fn$;
comment on function private.has_system_permission is 'Definer twin of has_system_permission: reads the grants the caller cannot see.';
{{ m.private_grants('has_system_permission', 'authenticated, platform_staff, service_role') }}
{{ m.api_function('has_system_permission', 'p_permission text', 'boolean', 'p_permission',
   'Returns whether the caller holds the platform permission through an active system role grant. Never consults memberships. Callable by authenticated users.', stable=true) }}

-- private.is_platform_team_member() -> boolean
-- Returns whether the caller holds any active, unexpired system role grant.
-- Callable by authenticated and service_role.
create or replace function private.is_platform_team_member()
  returns boolean
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
begin
  return (
    select exists (
      select from iam.system_role_grants g
        join iam.roles r on r.key = g.role_key
       where g.user_id = auth.uid()
         and g.revoked_at is null
         and (g.expires_at is null or g.expires_at > now())
         and (not r.is_break_glass or private.break_glass_active(g.id)))
       and private.request_is_valid());
end
$fn$;
comment on function private.is_platform_team_member is 'Definer twin of is_platform_team_member.';
{{ m.private_grants('is_platform_team_member') }}
{{ m.api_function('is_platform_team_member', '', 'boolean', '',
   'Returns whether the caller holds any active system role grant. Callable by authenticated users.', stable=true) }}

-- private.platform_account_type(user_id uuid) -> text
-- Returns super_admin (an active platform_superadmin grant), admin (any
-- other active system role grant) or user: seed 001's account_type, derived
-- from grants, never stored. Refuses (42501) asking about another user
-- unless the caller has platform.tenant.read. Unknown user: P0002.
-- Callable by authenticated and service_role.
create or replace function private.platform_account_type(user_id uuid)
  returns text
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
begin
  if user_id is distinct from auth.uid()
     and not private.is_trusted_caller()
     and not private.has_system_permission('platform.tenant.read') then
    raise exception 'platform_account_type: only platform staff may look up another user'
      using errcode = '42501';
  end if;
  if not exists (select from identity.users u where u.id = platform_account_type.user_id) then
    raise exception 'platform_account_type: no user %', user_id using errcode = 'P0002';
  end if;
  return case
    when exists (select from iam.system_role_grants g
                  where g.user_id = platform_account_type.user_id and g.role_key = 'platform_superadmin'
                    and g.revoked_at is null and (g.expires_at is null or g.expires_at > now()))
      then 'super_admin'
    when exists (select from iam.system_role_grants g
                  where g.user_id = platform_account_type.user_id
                    and g.revoked_at is null and (g.expires_at is null or g.expires_at > now()))
      then 'admin'
    else 'user'
  end;
end
$fn$;
comment on function private.platform_account_type is 'Definer twin of platform_account_type.';
{{ m.private_grants('platform_account_type') }}
{{ m.api_function('platform_account_type', 'p_user_id uuid default auth.uid()', 'text', 'p_user_id',
   'Returns super_admin, admin or user, derived from active system role grants. Another user: needs platform.tenant.read (42501). Unknown user: P0002.', stable=true) }}
