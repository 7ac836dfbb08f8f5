-- A request scoped to its active organization (role organization_scoped)
-- may do exactly what a signed-in request may: the same privileges as
-- authenticated (tenantdb mirrors them after every migrate and rollback;
-- a deployment by psql or sqitch runs the exported scripts, which end with
-- the same call).
select 'scoped' as check, d.object,
       pg_catalog.format('organization_scoped %s %s%s (authenticated %s): run tenantdb migrate, or select private.mirror_client_grants()',
                         case d.verb when 'grant' then 'lacks' else 'holds' end, d.privilege_type,
                         coalesce(' on column ' || d.col, ''), case d.verb when 'grant' then 'holds it' else 'does not' end) as detail
  from private.client_grant_differences() d
