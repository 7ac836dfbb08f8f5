-- Keeping private.tenant_access (migrations/0019_access_per_membership.sql):
-- one row per active membership. Exact at commit, by construction:
--   * a membership's own changes write its row in the same transaction
--     (the trigger below), under the membership row's lock, so two changes
--     of one membership are ordered by Postgres;
--   * deleting a membership deletes its row, and an organization's status
--     change is carried to its members' rows, by the foreign keys
--     (ON DELETE / ON UPDATE CASCADE);
--   * what a role carries is never copied: the helpers read
--     iam.role_permissions in the same snapshot as this table, so a
--     permission granted, revoked or updated while memberships change
--     cannot leave anything stale (tests/test_access_races.py).
-- This file holds no data: re-applying it rebuilds nothing.
{% import 'sql/macros.sql' as m with context %}

-- private.tenant_access_follow_membership() -> trigger
-- AFTER INSERT or UPDATE row trigger on tenancy.memberships: the
-- membership's row of private.tenant_access says its role and its
-- organization's status while it is active, and is gone otherwise. The
-- organization row is share-locked (FOR KEY SHARE, as its foreign key does)
-- before its status is read, so a concurrent status change is either
-- waited for and seen, or waits for this one and cascades to the row.
-- Refuses nothing.
create or replace function private.tenant_access_follow_membership()
  returns trigger
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  organization_status text;
begin
  if new.status <> 'active' then
    delete from private.tenant_access a where a.organization_id = new.organization_id and a.user_id = new.user_id;
    return null;
  end if;
  select o.status into organization_status from tenancy.organizations o where o.id = new.organization_id for key share;
  insert into private.tenant_access as a (organization_id, user_id, role_key, organization_status)
  values (new.organization_id, new.user_id, new.role_key, organization_status)
  on conflict (organization_id, user_id) do update
    set role_key = excluded.role_key, organization_status = excluded.organization_status
    where (a.role_key, a.organization_status) is distinct from (excluded.role_key, excluded.organization_status);
  return null;
end
$fn$;
comment on function private.tenant_access_follow_membership is 'Trigger: a membership''s row of private.tenant_access follows its role and status.';
{{ m.row_trigger('tenancy.memberships', 'keep_tenant_access', 'after insert or update of organization_id, user_id, role_key, status', 'private.tenant_access_follow_membership') }}

-- private.rebuild_tenant_access() -> bigint
-- Rebuilds private.tenant_access from tenancy.memberships and
-- tenancy.organizations and returns how many rows it holds. For bulk loads
-- made with triggers disabled (session_replication_role = replica); never
-- run by migrate. Takes SHARE locks on memberships and organizations for
-- its transaction (writes to them wait). Refuses (25000) to run under
-- REPEATABLE READ or SERIALIZABLE, whose snapshot predates the lock. Only
-- the owner (the role that migrates) may call it.
create or replace function private.rebuild_tenant_access()
  returns bigint
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  written bigint;
begin
  -- Under REPEATABLE READ or SERIALIZABLE the transaction's snapshot was
  -- taken before the lock: memberships committed in between would be
  -- missed.
  if current_setting('transaction_isolation') <> 'read committed' then
    raise exception 'rebuild_tenant_access must run under READ COMMITTED, not %', current_setting('transaction_isolation')
      using errcode = '25000', hint = 'Call it in its own transaction with the default isolation level.';
  end if;
  lock table tenancy.memberships, tenancy.organizations in share mode;
  delete from private.tenant_access;
  insert into private.tenant_access (organization_id, user_id, role_key, organization_status)
  select ms.organization_id, ms.user_id, ms.role_key, o.status
    from tenancy.memberships ms
    join tenancy.organizations o on o.id = ms.organization_id
   where ms.status = 'active';
  get diagnostics written = row_count;
  return written;
end
$fn$;
comment on function private.rebuild_tenant_access is 'Rebuilds private.tenant_access from memberships (after a bulk load with triggers off); returns its row count. Owner only.';
revoke all on function private.rebuild_tenant_access from public, anon, authenticated, platform_staff, service_role;
