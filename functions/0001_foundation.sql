{% import 'sql/macros.sql' as m with context -%}
{#- request_role: a role a request switches to (PostgREST switches to the
    role a signed JWT names; scope_request to organization_scoped): made
    once, nologin noinherit, with its comment, and granted to PostgREST's
    login role (Supabase's authenticator) where that exists. -#}
{% macro request_role(name, comment) -%}
do $role$
begin
  if not exists (select from pg_catalog.pg_roles where rolname = {{ name | sqlquote }}) then
    create role {{ name }} nologin noinherit;
  end if;
  comment on role {{ name }} is {{ comment | sqlquote }};
  if exists (select from pg_catalog.pg_roles where rolname = 'authenticator') then
    grant {{ name }} to authenticator;
  end if;
end
$role$;
{%- endmacro %}
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
{{ request_role('platform_staff', 'tenantdb: platform staff reading across organizations (platform_select policies); a staff token names this role.') }}
grant usage on schema private to platform_staff;

-- organization_scoped: the database role of a request that names its
-- active organization (a token claim organization_id, or an
-- X-Organization-Id header, switched to by the pre-request function
-- scope_request; or a token that names this role). It holds exactly the
-- privileges of authenticated (private.mirror_client_grants, run by
-- tenantdb after every migrate and rollback; verify compares them) and
-- the same policies, except on tenant tables (macro tenant_policies):
-- there its policy is the equality organization_id = <the active
-- organization, where the caller holds the permission>, not authenticated's
-- organization_id = any(<all of them>). It is not a member of
-- authenticated, so that policy does not apply to it too: with both, the
-- planner multiplies their selectivities, expects no rows, and sorts a big
-- organization's rows instead of walking its index in order
-- (docs/access.md).
{{ request_role('organization_scoped', 'tenantdb: a signed-in request scoped to its active organization (the privileges of authenticated; tenant policies narrowed to that organization).') }}

-- private.client_grant_differences() -> table (verb, kind, object, col, privilege_type)
-- The grants and revokes that would give organization_scoped exactly the
-- privileges authenticated holds on schemas, tables and views (and their
-- columns), sequences and functions; none when they agree. Refuses
-- nothing. Owner only (verify and mirror_client_grants read it).
create or replace function private.client_grant_differences()
  returns table (verb text, kind text, object text, col name, privilege_type text)
  language sql
  stable
  {{ m.pinned() }}
as $fn$
  with held as (
    select a.grantee, 'schema' as kind, pg_catalog.quote_ident(n.nspname) as object, null::name as col, a.privilege_type
      from pg_catalog.pg_namespace n cross join lateral pg_catalog.aclexplode(n.nspacl) a
    union all
    select a.grantee, case c.relkind when 'S' then 'sequence' else 'table' end, c.oid::regclass::text, null, a.privilege_type
      from pg_catalog.pg_class c cross join lateral pg_catalog.aclexplode(c.relacl) a
     where c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
    union all
    select a.grantee, 'column', c.oid::regclass::text, att.attname, a.privilege_type
      from pg_catalog.pg_attribute att
      join pg_catalog.pg_class c on c.oid = att.attrelid
     cross join lateral pg_catalog.aclexplode(att.attacl) a
     where att.attnum > 0 and not att.attisdropped
    union all
    select a.grantee, 'function', p.oid::regprocedure::text, null, a.privilege_type
      from pg_catalog.pg_proc p cross join lateral pg_catalog.aclexplode(p.proacl) a
  ),
  source as (select h.kind, h.object, h.col, h.privilege_type from held h where h.grantee = 'authenticated'::regrole),
  target as (select h.kind, h.object, h.col, h.privilege_type from held h where h.grantee = 'organization_scoped'::regrole)
  select 'grant', g.* from (select * from source except select * from target) g
  union all
  select 'revoke', v.* from (select * from target except select * from source) v
$fn$;
comment on function private.client_grant_differences is 'What organization_scoped lacks of authenticated''s privileges (grant) and holds beyond them (revoke); empty when they agree.';
revoke all on function private.client_grant_differences from public, anon, authenticated, platform_staff, service_role;

-- private.mirror_client_grants() -> integer
-- Gives organization_scoped exactly the privileges authenticated holds
-- (client_grant_differences) and returns how many grants and revokes it
-- made. tenantdb runs it after every migrate and rollback, and the
-- exported deploy scripts end with it. An object the running role may not
-- grant on is skipped with a WARNING (verify then lists it). Refuses
-- nothing. Owner only.
create or replace function private.mirror_client_grants()
  returns integer
  language plpgsql
  {{ m.pinned() }}
as $fn$
declare
  r record;
  made integer := 0;
begin
  for r in select * from private.client_grant_differences() loop
    begin
      execute pg_catalog.format('%s %s%s on %s %s %s organization_scoped',
                                r.verb, r.privilege_type, coalesce(' (' || pg_catalog.quote_ident(r.col) || ')', ''),
                                case r.kind when 'column' then 'table' else r.kind end, r.object,
                                case r.verb when 'grant' then 'to' else 'from' end);
      made := made + 1;
    exception when insufficient_privilege then
      raise warning 'mirror_client_grants: cannot % % on % % for organization_scoped: %', r.verb, r.privilege_type, r.kind, r.object, sqlerrm;
    end;
  end loop;
  return made;
end
$fn$;
comment on function private.mirror_client_grants is 'Gives organization_scoped exactly the privileges of authenticated; run by tenantdb after migrate and rollback. Returns the number of grants and revokes made.';
revoke all on function private.mirror_client_grants from public, anon, authenticated, platform_staff, service_role;
