{% import 'sql/macros.sql' as m with context -%}
-- Helpers every domain uses.

-- private.set_updated_at() -> trigger
-- Returns NEW with updated_at set to now(). Refuses nothing.
-- Called only as a BEFORE UPDATE row trigger (see macro updated_at).
create or replace function private.set_updated_at()
  returns trigger
  language plpgsql
  {{ m.pinned() }}
as $fn$
begin
  new.updated_at := now();
  return new;
end
$fn$;
comment on function private.set_updated_at is 'Trigger: stamps updated_at with now() on every UPDATE.';
revoke all on function private.set_updated_at from public;

-- private.refuse_change() -> trigger
-- Refuses every UPDATE and DELETE of an append-only table (SQLSTATE 55000,
-- constraint <table>_append_only). The one exception: a row whose
-- organization has just been deleted goes with it (the foreign key's
-- cascade); whether an organization may be deleted is decided on
-- tenancy.organizations. Called only as a BEFORE row trigger (see macro
-- append_only).
create or replace function private.refuse_change()
  returns trigger
  language plpgsql
  {{ m.definer() }}
as $fn$
begin
  if tg_op = 'DELETE' and to_jsonb(old) ? 'organization_id'
     and not exists (select from tenancy.organizations o where o.id = (to_jsonb(old) ->> 'organization_id')::uuid) then
    return old;
  end if;
  raise exception '%.% is append-only: % refused', tg_table_schema, tg_table_name, lower(tg_op)
    using errcode = '55000', constraint = tg_table_name || '_append_only',
          hint = 'Correct it with a new, compensating row.';
end
$fn$;
comment on function private.refuse_change is 'Trigger: refuses UPDATE and DELETE on append-only tables (55000).';
revoke all on function private.refuse_change from public, anon, authenticated;
