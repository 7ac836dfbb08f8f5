-- private.tenant_access: who holds which tenant permission where, one row
-- per (user, permission, organization), derived from memberships, their
-- roles' permissions and the organization's status (the derivation is
-- the view private.tenant_access_source; whether the status admits the
-- permission is the generated column admitted). It is what every
-- tenant RLS policy reads (org_ids_with_permission), so deciding the
-- caller's organizations is one index range scan of one table instead of a
-- join of three.
--
-- Exact at commit, by construction where it matters most:
--   * losing access needs no trigger: the rows reference the membership,
--     the role's permission and the organization's (id, status) with
--     ON DELETE / ON UPDATE CASCADE, so Postgres's own foreign keys delete
--     them with a membership or a revoked role permission and carry a
--     status change over, at any isolation level;
--   * gaining access is written by triggers: a new or changed membership
--     (its rows are rebuilt), a permission added to a role (rows for every
--     active member holding that role). The membership trigger share-locks
--     the role row and the role-permission trigger locks it for update, so
--     under READ COMMITTED the second of two concurrent changes waits for
--     the first and sees it. (Under REPEATABLE READ such a race leaves the
--     new member without the newly added permission until the membership
--     changes again: access is missing, never extra.)
--
-- The table is derived data: this file drops and rebuilds it whenever its
-- definition changes (tenantdb re-applies a changed repeatable). Clients
-- have no grant on it; only the definer helpers read it.
{% import 'sql/macros.sql' as m with context %}

-- The (id, status) pair the rows' status follows (a foreign key target).
create unique index if not exists organizations_id_status on tenancy.organizations (id, status);

-- What tenant_access holds, computed from its sources: every tenant
-- permission of every active membership, with the organization's status.
create or replace view private.tenant_access_source
  with (security_invoker = true) as
select ms.user_id, rp.permission_key, ms.organization_id, ms.role_key, o.status as organization_status
  from tenancy.memberships ms
  join tenancy.organizations o on o.id = ms.organization_id
  join iam.role_permissions rp on rp.role_key = ms.role_key and not rp.permission_is_platform
 where ms.status = 'active';
comment on view private.tenant_access_source is 'The live join private.tenant_access is derived from (used to write it, never read by policies).';
revoke all on private.tenant_access_source from public, anon, authenticated, service_role;

drop table if exists private.tenant_access;
create table private.tenant_access (
  user_id uuid not null,
  permission_key text not null,
  organization_id uuid not null,
  role_key text not null,
  organization_status text not null,
  -- The status rule: every permission while the organization is active;
  -- only *.read and *.view while suspended (read-only); none once deleted.
  admitted boolean not null generated always as (
    organization_status = 'active'
    or (organization_status = 'suspended' and (permission_key like '%.read' or permission_key like '%.view'))) stored,
  primary key (user_id, permission_key, organization_id),
  constraint tenant_access_membership_fk foreign key (organization_id, user_id)
    references tenancy.memberships (organization_id, user_id) on update cascade on delete cascade,
  constraint tenant_access_role_permission_fk foreign key (role_key, permission_key)
    references iam.role_permissions (role_key, permission_key) on update cascade on delete cascade,
  constraint tenant_access_organization_status_fk foreign key (organization_id, organization_status)
    references tenancy.organizations (id, status) on update cascade on delete cascade
);
create index tenant_access_membership on private.tenant_access (organization_id, user_id);
create index tenant_access_role_permission on private.tenant_access (role_key, permission_key);
create index tenant_access_organization_status on private.tenant_access (organization_id, organization_status);
comment on table private.tenant_access is 'Derived: the tenant permissions each active membership carries, with the organization''s status; read by the RLS helpers, kept by foreign keys and triggers, rebuilt when this file changes.';
comment on column private.tenant_access.organization_status is 'The organization''s status, kept by the foreign key (ON UPDATE CASCADE).';
comment on column private.tenant_access.admitted is 'Whether the organization''s status lets the member use the permission now: the one statement of the status rule.';
revoke all on table private.tenant_access from public, anon, authenticated, service_role;
{{ m.rls_on('private.tenant_access') }}

-- private.refresh_tenant_access(organization_id uuid, user_id uuid) -> void
-- Rebuilds the rows of one membership from its current state (none when
-- the membership is gone or not active). Refuses nothing. Internal: the
-- membership trigger calls it.
create or replace function private.refresh_tenant_access(organization_id uuid, user_id uuid)
  returns void
  language plpgsql
  {{ m.definer() }}
as $fn$
begin
  delete from private.tenant_access a
   where a.organization_id = refresh_tenant_access.organization_id and a.user_id = refresh_tenant_access.user_id;
  insert into private.tenant_access (user_id, permission_key, organization_id, role_key, organization_status)
  select src.user_id, src.permission_key, src.organization_id, src.role_key, src.organization_status
    from private.tenant_access_source src
   where src.organization_id = refresh_tenant_access.organization_id
     and src.user_id = refresh_tenant_access.user_id;
end
$fn$;
comment on function private.refresh_tenant_access is 'Internal: rebuilds one membership''s rows of private.tenant_access.';
revoke all on function private.refresh_tenant_access from public, anon, authenticated;

-- private.memberships_keep_tenant_access() -> trigger
-- AFTER INSERT OR UPDATE row trigger on tenancy.memberships: share-locks
-- the role row (see the header), then rebuilds the membership's rows.
-- Deletions need nothing: the foreign key cascades. Refuses nothing.
create or replace function private.memberships_keep_tenant_access()
  returns trigger
  language plpgsql
  {{ m.definer() }}
as $fn$
begin
  perform from iam.roles r where r.key = new.role_key for share;
  perform private.refresh_tenant_access(new.organization_id, new.user_id);
  return null;
end
$fn$;
comment on function private.memberships_keep_tenant_access is 'Trigger: a membership''s tenant_access rows follow its role and status.';
revoke all on function private.memberships_keep_tenant_access from public, anon, authenticated;
drop trigger if exists keep_tenant_access on tenancy.memberships;
create trigger keep_tenant_access
  after insert or update of organization_id, user_id, role_key, status on tenancy.memberships
  for each row execute function private.memberships_keep_tenant_access();

-- private.role_permissions_keep_tenant_access() -> trigger
-- AFTER INSERT row trigger on iam.role_permissions: locks the role row (see
-- the header) and gives every active member holding the role the new
-- tenant permission. Removals need nothing: the foreign key cascades.
create or replace function private.role_permissions_keep_tenant_access()
  returns trigger
  language plpgsql
  {{ m.definer() }}
as $fn$
begin
  if new.permission_is_platform then
    return null;
  end if;
  perform from iam.roles r where r.key = new.role_key for no key update;
  insert into private.tenant_access (user_id, permission_key, organization_id, role_key, organization_status)
  select src.user_id, src.permission_key, src.organization_id, src.role_key, src.organization_status
    from private.tenant_access_source src
   where src.role_key = new.role_key and src.permission_key = new.permission_key
  on conflict do nothing;
  return null;
end
$fn$;
comment on function private.role_permissions_keep_tenant_access is 'Trigger: a permission added to a tenant role reaches every active member holding it.';
{{ m.row_trigger('iam.role_permissions', 'keep_tenant_access', 'after insert', 'private.role_permissions_keep_tenant_access') }}

-- Backfill: every membership as it stands.
insert into private.tenant_access (user_id, permission_key, organization_id, role_key, organization_status)
select src.user_id, src.permission_key, src.organization_id, src.role_key, src.organization_status
  from private.tenant_access_source src;
