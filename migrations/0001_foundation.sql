-- 0001 foundation: the schemas of every domain, the private schema for
-- SECURITY DEFINER helpers, and (postgres target) the Supabase auth shim.

-- Tables force row-level security, which binds their owner too; the
-- SECURITY DEFINER functions (owned by the role migrating) must bypass it.
do $owner$
begin
  if not exists (select from pg_catalog.pg_roles r
                  where r.rolname = current_user and (r.rolsuper or r.rolbypassrls)) then
    raise exception 'tenantdb must be migrated by a role that bypasses row level security; % does not', current_user
      using errcode = '42501',
            hint = 'Use a superuser, Supabase''s postgres role, or: alter role ' || current_user || ' bypassrls';
  end if;
end
$owner$;
{% if target == 'postgres' %}
{% include 'sql/targets/postgres_auth_shim.sql' %}
{% endif %}

{% if api != 'public' %}
create schema if not exists {{ api }};
{% endif %}
comment on schema {{ api }} is 'tenantdb API schema: the functions and security_invoker views apps call.';
grant usage on schema {{ api }} to anon, authenticated, service_role;

create schema identity;
comment on schema identity is 'tenantdb identity: user profiles and self-hosted auth tables.';
create schema tenancy;
comment on schema tenancy is 'tenantdb tenancy: organizations, memberships, invitations.';
create schema iam;
comment on schema iam is 'tenantdb iam: roles, permissions, role mappings and platform role grants.';
create schema private;
comment on schema private is 'tenantdb private: SECURITY DEFINER helpers and trigger functions; never exposed over an API.';

revoke all on schema identity, tenancy, iam, private from public;
grant usage on schema identity, tenancy, iam, private to authenticated, service_role;
