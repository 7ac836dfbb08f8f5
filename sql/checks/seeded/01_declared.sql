-- Every name a policy, a function or a metered table's trigger uses must be
-- declared, or the check that uses it refuses everyone (an owner included)
-- until someone notices:
--   * a permission named by a literal argument of a function that takes
--     one (a text argument named permission or *_permission:
--     private.org_ids_with_permission, which the policy macros call,
--     private.has_system_permission, has_permission, require_permission,
--     require_platform, require_member_or_platform ...) in a policy of any
--     table or in the body of a function of a domain schema, private or
--     the API schema: a key of iam.permissions;
--   * a feature named the same way (a text argument named feature_key or
--     *_feature_key: check_feature_access): a key of catalog.features;
--   * the feature of a gate_and_meter trigger (macro metered): a key of
--     catalog.features with a meter of aggregation live_count (the trigger
--     refuses every insert otherwise).
-- A call is found by its function's name followed by its parenthesized
-- arguments (auth.uid() among them, say; a call nested deeper is not read:
-- never misread), and only literals shaped like a key count.
-- verify runs this check after the seeds, in a transaction it rolls back:
-- a name is reported when the seeds as they are now do not declare it.
{% import 'sql/macros.sql' as m with context %}
with takers as (
  -- the functions that take a permission or a feature key by name
  select distinct p.proname::text as fname,
         case when a.name ~ '(^|_)permission$' then 'permission' else 'feature' end as kind
    from pg_catalog.pg_proc p
   cross join lateral unnest(p.proargnames) as a (name)
   where p.pronamespace in ('private'::regnamespace, '{{ api }}'::regnamespace)
     and (a.name ~ '(^|_)permission$' or a.name ~ '(^|_)feature_key$')
),
texts as (
  select format('%I.%I', n.nspname, c.relname) as object, 'policy' as what, pol.polname::text as name,
         concat_ws(' ', pg_catalog.pg_get_expr(pol.polqual, pol.polrelid),
                        pg_catalog.pg_get_expr(pol.polwithcheck, pol.polrelid)) as body
    from pg_catalog.pg_policy pol
    join pg_catalog.pg_class c on c.oid = pol.polrelid
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace
  union all
  select p.oid::regprocedure::text, 'function', null, p.prosrc
    from pg_catalog.pg_proc p
    join pg_catalog.pg_namespace n on n.oid = p.pronamespace
    join pg_catalog.pg_language l on l.oid = p.prolang
   where n.nspname in ({{ m.schema_list() }}, 'private', '{{ api }}')
     and l.lanname in ('sql', 'plpgsql')
     and not exists (select from pg_catalog.pg_depend d where d.objid = p.oid and d.deptype = 'e')
),
named as (
  -- (object, policy or function, the name it uses, permission or feature)
  select distinct t.object, t.what, t.name, lit[1] as key, k.kind
    from texts t
    join takers k on t.body ~ ('\m' || k.fname || '\s*\(')
   cross join lateral regexp_matches(t.body, '\m' || k.fname || '\s*\(((?:[^()]|\([^()]*\))*)\)', 'g') as call (args)
   cross join lateral regexp_matches(call.args[1], '''([^'']*)''', 'g') as lit
   where lit[1] ~ case k.kind when 'permission' then '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$' else '^[a-z][a-z0-9_]*$' end
),
missing as (
  select * from named
   where (kind = 'permission' and not exists (select from iam.permissions p where p.key = named.key))
      or (kind = 'feature' and not exists (select from catalog.features f where f.key = named.key))
)
select 'undeclared' as check, object,
       case when what = 'policy'
            then format(case when count(*) > 1 then 'policies %s name' else 'policy %s names' end,
                        string_agg(name, ', ' order by name))
            else 'its body names' end
       || case when kind = 'feature'
               then format(' feature %s, which the seeded catalog does not declare: add it to seeds/catalog.json of the '
                           'app, then run tenantdb seed', key)
               when key like 'platform.%'
               then format(' platform permission %s, which no seed declares: platform permissions are the package''s '
                           '(an app declares tenant permissions only): name one of iam.permissions where is_platform', key)
               else format(' permission %s, which no seed declares: add it to seeds/permissions.json of the app (with '
                           'the roles that hold it), then run tenantdb seed', key) end as detail
  from missing
 group by object, what, key, kind
union all
select 'undeclared', format('%I.%I', n.nspname, c.relname),
       case when f.key is null
            then format('trigger %s counts feature %s, which the seeded catalog does not declare: add it to seeds/catalog.json '
                        'of the app (a limit with a meter of aggregation live_count), then run tenantdb seed', t.tgname, g.feature)
            when f.meter_key is null
            then format('trigger %s counts feature %s, which has no meter: every insert is refused (22023); give it a meter '
                        'of aggregation live_count in seeds/catalog.json, then run tenantdb seed', t.tgname, g.feature)
            else format('trigger %s counts feature %s, whose meter %s aggregates %s, not live_count: every insert is refused '
                        '(22023); give the feature a live_count meter in seeds/catalog.json, then run tenantdb seed',
                        t.tgname, g.feature, f.meter_key, mt.aggregation) end
  from pg_catalog.pg_trigger t
  join pg_catalog.pg_class c on c.oid = t.tgrelid
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
 cross join lateral (select pg_catalog.split_part(pg_catalog.encode(t.tgargs, 'escape'), '\000', 1) as feature) g
  left join catalog.features f on f.key = g.feature
  left join catalog.meters mt on mt.key = f.meter_key
 where t.tgfoid = 'private.gate_and_meter()'::regprocedure
   and t.tgparentid = 0  -- a partitioned table's trigger, not its clones on the partitions
   and (f.key is null or mt.key is null or mt.aggregation <> 'live_count')
