drop table if exists tenancy.invitations;
drop table if exists tenancy.memberships;
drop table if exists tenancy.organizations;
