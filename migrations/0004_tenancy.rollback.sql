-- The derived access table of functions/0004_tenant_access.sql references
-- memberships, role permissions and organizations: it goes first.
drop table if exists private.tenant_access;
drop table if exists tenancy.invitations;
drop table if exists tenancy.memberships;
drop table if exists tenancy.organizations;
