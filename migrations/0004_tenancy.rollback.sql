-- The derived access table of functions/0004_tenant_access.sql and its
-- source view read memberships, role permissions and organizations: they
-- go first.
drop table if exists private.tenant_access;
drop view if exists private.tenant_access_source;
drop table if exists tenancy.invitations;
drop table if exists tenancy.memberships;
drop table if exists tenancy.organizations;
