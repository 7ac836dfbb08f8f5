drop index if exists iam.system_role_grants_user;
