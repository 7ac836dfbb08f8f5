-- Rollback of 0019 access per membership: the schema this release makes
-- up to 0018, where private.tenant_access does not exist (the previous
-- release made it in a repeatable of 0004, which this release no longer
-- has). tenantdb drops the functions of 0019's repeatables, with the
-- membership trigger, after this file.
-- Rolling back is the first step of going back to the release before: its
-- `tenantdb migrate` rebuilds its own table, because the bookkeeping row
-- of that file is removed here (its checksum no longer matches anything,
-- so it is re-applied). Until then tenant reads fail (42P01: the
-- permission helpers read private.tenant_access): docs/access.md.
drop table private.tenant_access;
drop index if exists tenancy.organizations_id_status;
do $bookkeeping$
begin
  -- tenantdb's own bookkeeping (a deployment by sqitch or psql has none)
  if to_regclass('tenantdb.repeatables') is not null then
    delete from tenantdb.repeatables where path = 'functions/0004_tenant_access.sql';
  end if;
end
$bookkeeping$;
