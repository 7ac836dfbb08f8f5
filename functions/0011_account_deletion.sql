-- Account deletion: what happens to a user's own organization when the
-- account goes (migration 0011 made the rest of the schema let it go).
{% import 'sql/macros.sql' as m with context %}

-- private.users_keep_financial_organizations() -> trigger
-- BEFORE DELETE row trigger on identity.users: a personal organization
-- that holds financial records (has_financial_records) cannot be deleted
-- with its owner's account, so it is kept — status deleted, no owner —
-- with its invoices, ledger and payments; one without them goes with the
-- account (the foreign key cascades). Refuses nothing; the deletion of a
-- user who is the last owner of a business organization is still refused
-- (organizations_keep_an_owner).
create or replace function private.users_keep_financial_organizations()
  returns trigger
  language plpgsql
  {{ m.definer() }}
as $fn$
begin
  update tenancy.organizations o
     set status = 'deleted', personal_owner_id = null
   where o.personal_owner_id = old.id
     and private.has_financial_records(o.id);
  return old;
end
$fn$;
comment on function private.users_keep_financial_organizations is 'Trigger: a deleted user''s personal organization with financial records is kept, deleted and ownerless.';
{{ m.row_trigger('identity.users', 'keep_financial_organizations', 'before delete', 'private.users_keep_financial_organizations') }}
