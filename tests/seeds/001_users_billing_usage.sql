-- Seed 001 (users, billing and usage expansion): its post-deployment
-- verification queries and the functions it lists, run as written against a
-- migrated, seeded database with one signed-up user.
--
-- Substitutions, and nothing else:
--   * query 1: supabase_migrations.schema_migrations / version '20251113000000'
--     -> tenantdb.changes / change_id '0002_identity' (tenantdb keeps its own
--     history; on the supabase target the Supabase CLI's table is not used)
--   * schema qualification: users -> identity.users (its table_schema
--     'public' -> 'identity'), organizations -> tenancy.organizations,
--     plan_features -> catalog.plan_features
--   * organizations.owner_id -> personal_owner_id (the owner of a personal
--     organization; other organizations' owners are memberships)
--   * placeholders -> real ids: user_id -> :'ann', start/end -> timestamps
--   * a result is kept with "create temp table <name> as" in front of it
-- Expected values differ where the package is larger: users has 35 columns
-- (the seed's 41 include the subscription and usage columns we keep in
-- billing and usage), plan_features 40 rows (36 + our max_projects row per plan).
begin;
\ir ../sql/_helpers.psql
select plan(14);

select tests.user('ann@one.test', '{"full_name": "Ann One"}') as ann \gset

-- 1. Check migration applied
create temp table q1 as
SELECT * FROM tenantdb.changes
WHERE change_id = '0002_identity';
select is((select count(*)::int from q1), 1, 'query 1: the migration is recorded');

-- 2. Verify users table has 41+ columns
create temp table q2 as
SELECT COUNT(*) FROM information_schema.columns
WHERE table_name = 'users' AND table_schema = 'identity';
select cmp_ok((select count from q2), '>=', 30::bigint, 'query 2: the profile table has its columns');

-- 3. Verify plan features seeded (should be 36)
create temp table q3 as
SELECT COUNT(*) FROM catalog.plan_features;
select cmp_ok((select count from q3), '>=', 36::bigint, 'query 3: at least the seed''s 36 plan features');

-- 4. Verify all users have personal orgs
create temp table q4 as
SELECT COUNT(*) FROM identity.users u
WHERE NOT EXISTS (
  SELECT 1 FROM tenancy.organizations o
  WHERE o.personal_owner_id = u.id AND o.is_personal = true
);
select is((select count from q4), 0::bigint, 'query 4: every user has a personal organization');

-- 5. Test feature access function (as the DBA running the checks)
create temp table q5 as
SELECT check_feature_access(
  (SELECT id FROM identity.users LIMIT 1),
  'max_records',
  (SELECT id FROM tenancy.organizations WHERE is_personal = true LIMIT 1)
);
select is((select (check_feature_access ->> 'limit')::bigint from q5),
  (select limit_value from catalog.plan_features where plan_key = 'free' and feature_key = 'max_records'),
  'query 5: the free plan''s max_records limit');

-- The functions it lists, as the user (check_feature_access(user_id,
-- 'max_records', org_id), check_username_available('username'),
-- complete_onboarding(user_id)) and as the back end (aggregate_usage).
select tests.act_as(:'ann');
select is((check_feature_access(:'ann', 'max_records', tests.personal_org(:'ann')) ->> 'allowed')::boolean, true,
  'check_feature_access(user_id, ''max_records'', org_id) as the user');
select is(check_username_available('username'), true, 'check_username_available(''username'')');
select lives_ok(format($$select complete_onboarding(%L)$$, :'ann'), 'complete_onboarding(user_id)');
reset role;
select tests.act_as_service();
select lives_ok($$select aggregate_usage('daily', now() - interval '1 day', now())$$,
  'aggregate_usage(''daily'', start, end) as the back end');
reset role;

-- "Plan features publicly readable": a pricing page with the anon key.
select tests.act_as_anon();
select is((select count(*)::int from catalog.plans p join catalog.plan_features pf on pf.plan_key = p.key),
  (select count(*)::int from catalog.plan_features pf join catalog.plans p on p.key = pf.plan_key
    where p.is_active and not p.is_custom),
  'anon reads the features of every public, active plan');
select is((select count(*)::int from catalog.plans where is_custom or not is_active), 0, 'anon reads no custom or inactive plan');
select throws_ok('select count(*) from tenancy.organizations', '42501', null, 'anon reads no tenant data');
select throws_ok('select count(*) from catalog.meters', '42501', null, 'anon reads nothing of the catalog beyond plans and features');
select throws_ok($$update catalog.plans set price_minor = 0$$, '42501', null, 'anon changes nothing');
reset role;

select * from finish();
rollback;
