-- Helpers every domain uses.

-- private.set_updated_at() -> trigger
-- Returns NEW with updated_at set to now(). Refuses nothing.
-- Called only as a BEFORE UPDATE row trigger (see macro updated_at).
create or replace function private.set_updated_at()
  returns trigger
  language plpgsql
  set search_path = pg_catalog, pg_temp
as $fn$
begin
  new.updated_at := now();
  return new;
end
$fn$;
comment on function private.set_updated_at is 'Trigger: stamps updated_at with now() on every UPDATE.';
revoke all on function private.set_updated_at from public;
