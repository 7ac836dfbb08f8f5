-- 0010 read paths: the indexes that let every RLS-guarded read start from
-- its key. test_isolation's plan tests EXPLAIN each table as a member and
-- as platform staff with sequential scans disabled; these are what they
-- found missing.

-- A user's own grants (personal policy owner_select: user_id = auth.uid())
-- and staff looking up one user's grants, revoked ones included (the
-- partial unique index covers active grants only).
create index system_role_grants_user on iam.system_role_grants (user_id);
