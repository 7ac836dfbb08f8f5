-- 0019 access per membership: private.tenant_access holds one row per
-- active membership (user, organization, role, the organization's status)
-- instead of one per (user, permission, organization). Which roles carry a
-- permission is read from iam.role_permissions when a policy asks (a
-- handful of roles, one index lookup), so:
--   * changing a role's permissions writes one row of iam.role_permissions
--     and nothing else, and cannot race a membership change: there is
--     nothing derived from it to get stale (an UPDATE of role_permissions
--     is exact too);
--   * a membership change writes one derived row, an organization's status
--     change one per member.
-- The table is created and filled here, once: the functions that keep it
-- (functions/0019_access_per_membership.sql) never rebuild it when their
-- file changes. private.rebuild_tenant_access() rebuilds it on demand
-- (after a bulk load with triggers disabled).
-- The previous shape, its source view and the functions and triggers that
-- kept it (a file of their own in the previous release) go first, where
-- they exist (a database installed by this release never had them).
{% import 'sql/macros.sql' as m with context %}

drop trigger if exists keep_tenant_access on tenancy.memberships;
drop trigger if exists keep_tenant_access on iam.role_permissions;
drop function if exists private.memberships_keep_tenant_access();
drop function if exists private.role_permissions_keep_tenant_access();
drop function if exists private.refresh_tenant_access(uuid, uuid);
drop table if exists private.tenant_access;
drop view if exists private.tenant_access_source;

-- The (id, status) pair the rows' status follows (a foreign key target;
-- the previous release made it in the same file).
create unique index if not exists organizations_id_status on tenancy.organizations (id, status);

create table private.tenant_access (
  organization_id uuid not null,
  user_id uuid not null,
  role_key text not null,
  organization_status text not null,
  constraint tenant_access_pkey primary key (organization_id, user_id),
  constraint tenant_access_membership_fk foreign key (organization_id, user_id)
    references tenancy.memberships (organization_id, user_id) on update cascade on delete cascade,
  constraint tenant_access_organization_status_fk foreign key (organization_id, organization_status)
    references tenancy.organizations (id, status) on update cascade on delete cascade
);
-- What a policy reads: the caller's memberships holding one of the roles
-- that carry the permission, organization and status from the index alone.
create index tenant_access_user_role on private.tenant_access (user_id, role_key)
  include (organization_id, organization_status);
comment on table private.tenant_access is
  'Derived: one row per active membership with its role and the organization''s status; the tenant RLS helpers read it with the roles that carry a permission (iam.role_permissions). Kept by the membership trigger keep_tenant_access and by its foreign keys; rebuilt only by private.rebuild_tenant_access().';
comment on column private.tenant_access.organization_status is 'The organization''s status, kept by the foreign key (ON UPDATE CASCADE); the helpers apply the status rule to it (suspended: read permissions only).';
revoke all on table private.tenant_access from public, anon, authenticated, service_role;
{{ m.rls_on('private.tenant_access') }}

insert into private.tenant_access (organization_id, user_id, role_key, organization_status)
select ms.organization_id, ms.user_id, ms.role_key, o.status
  from tenancy.memberships ms
  join tenancy.organizations o on o.id = ms.organization_id
 where ms.status = 'active';
