drop table if exists iam.system_role_grants;
drop table if exists iam.role_permissions;
drop table if exists iam.permissions;
drop table if exists iam.roles;
