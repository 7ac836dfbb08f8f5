-- The derived access table (made by 0019 in this release, by a repeatable
-- of 0004 in the one before, with a source view) reads memberships and
-- organizations: it goes first.
drop table if exists private.tenant_access;
drop view if exists private.tenant_access_source;
drop table if exists tenancy.invitations;
drop table if exists tenancy.memberships;
drop table if exists tenancy.organizations;
