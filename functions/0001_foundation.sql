{% import 'sql/macros.sql' as m with context -%}
-- Helpers every domain uses.

-- private.set_updated_at() -> trigger
-- Returns NEW with updated_at set to now(). Refuses nothing.
-- Called only as a BEFORE UPDATE row trigger (see macro updated_at).
create or replace function private.set_updated_at()
  returns trigger
  language plpgsql
  {{ m.pinned() }}
as $fn$
begin
  new.updated_at := now();
  return new;
end
$fn$;
comment on function private.set_updated_at is 'Trigger: stamps updated_at with now() on every UPDATE.';
revoke all on function private.set_updated_at from public;

-- private.status_transition() -> trigger
-- Refuses (23514, constraint <table>_status_transition) a change of status
-- that is not one of the trigger's arguments, each 'from>to'. Returns NEW.
-- Called only as a BEFORE UPDATE OF status row trigger (see macro
-- status_transitions).
create or replace function private.status_transition()
  returns trigger
  language plpgsql
  {{ m.pinned() }}
as $fn$
begin
  if not (old.status || '>' || new.status) = any (tg_argv) then
    raise exception '%.% %: status cannot move from % to %', tg_table_schema, tg_table_name, to_jsonb(old) ->> 'id', old.status, new.status
      using errcode = '23514', constraint = tg_table_name || '_status_transition';
  end if;
  return new;
end
$fn$;
comment on function private.status_transition is 'Trigger: a status moves only along the moves given as the trigger''s arguments (23514).';
revoke all on function private.status_transition from public;

-- private.refuse_change() -> trigger
-- Refuses every UPDATE and DELETE of an append-only table (SQLSTATE 55000,
-- constraint <table>_append_only). The one exception: a row whose
-- organization has just been deleted goes with it (the foreign key's
-- cascade); whether an organization may be deleted is decided on
-- tenancy.organizations. Called only as a BEFORE row trigger (see macro
-- append_only).
create or replace function private.refuse_change()
  returns trigger
  language plpgsql
  {{ m.definer() }}
as $fn$
begin
  if tg_op = 'DELETE' and to_jsonb(old) ? 'organization_id'
     and not exists (select from tenancy.organizations o where o.id = (to_jsonb(old) ->> 'organization_id')::uuid) then
    return old;
  end if;
  raise exception '%.% is append-only: % refused', tg_table_schema, tg_table_name, lower(tg_op)
    using errcode = '55000', constraint = tg_table_name || '_append_only',
          hint = 'Correct it with a new, compensating row.';
end
$fn$;
comment on function private.refuse_change is 'Trigger: refuses UPDATE and DELETE on append-only tables (55000).';
revoke all on function private.refuse_change from public, anon, authenticated;

-- platform_staff: the database role of a platform staff member's read
-- token (PostgREST switches to the role a signed JWT names). It reads the
-- tables whose platform_select policy admits the caller's platform
-- permission (macro platform_read) and nothing else: no tenant policy
-- applies to it, no function is granted to it; staff act through the API
-- functions with their ordinary authenticated token. Created here, in a
-- repeatable file, so that an upgrade gets it before the policies name it.
do $staff$
begin
  if not exists (select from pg_catalog.pg_roles where rolname = 'platform_staff') then
    create role platform_staff nologin noinherit;
  end if;
  comment on role platform_staff is 'tenantdb: platform staff reading across organizations (platform_select policies); a staff token names this role.';
  -- PostgREST's login role (Supabase's authenticator) must be able to switch to it.
  if exists (select from pg_catalog.pg_roles where rolname = 'authenticator') then
    grant platform_staff to authenticator;
  end if;
end
$staff$;
grant usage on schema private to platform_staff;

-- organization_scoped: the database role of a request that names its
-- active organization (a token claim organization_id, or an
-- X-Organization-Id header, switched to by the pre-request function
-- scope_request; or a token that names this role). It has every privilege
-- and policy of authenticated (it is a member of it, with inherit), and
-- one restrictive policy more on every tenant table (macro
-- tenant_policies): the row's organization is the active one. Postgres
-- sees that as an equality, so a list page of a big organization reads
-- its index in order and stops at the page (docs/access.md). It can only
-- narrow what authenticated sees.
do $scoped$
begin
  if not exists (select from pg_catalog.pg_roles where rolname = 'organization_scoped') then
    create role organization_scoped nologin inherit;
  end if;
  comment on role organization_scoped is 'tenantdb: a signed-in request scoped to its active organization (authenticated, narrowed to one organization by tenant_scope policies).';
  grant authenticated to organization_scoped;
  if exists (select from pg_catalog.pg_roles where rolname = 'authenticator') then
    grant organization_scoped to authenticator;
  end if;
end
$scoped$;
