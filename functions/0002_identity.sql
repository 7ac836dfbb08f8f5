-- identity: user-name rules, onboarding, updated_at stamps.
{% import 'sql/macros.sql' as m with context %}

-- private.username_is_reserved(name text) -> boolean
-- Returns whether the name is reserved (case-insensitive). Refuses nothing.
-- Internal: the user-name trigger and check_username_available (definer) ask it.
create or replace function private.username_is_reserved(name text)
  returns boolean
  language sql
  stable
  {{ m.definer() }}
as $fn$
  select exists (select from identity.reserved_usernames r where r.name = lower(username_is_reserved.name))
$fn$;
comment on function private.username_is_reserved is 'Whether a user name is in identity.reserved_usernames (case-insensitive).';
{{ m.private_grants('username_is_reserved', 'service_role') }}

-- private.users_username_rules() -> trigger
-- Refuses (SQLSTATE 23514) a reserved user name on INSERT or UPDATE of
-- identity.users; the format and uniqueness are constraints of the table.
create or replace function private.users_username_rules()
  returns trigger
  language plpgsql
  {{ m.definer() }}
as $fn$
begin
  if new.username is not null and private.username_is_reserved(new.username) then
    raise exception 'user name "%" is reserved', new.username
      using errcode = '23514', constraint = 'users_username_not_reserved',
            hint = 'Choose another user name; see identity.reserved_usernames.';
  end if;
  return new;
end
$fn$;
comment on function private.users_username_rules is 'Trigger on identity.users: refuses reserved user names (23514, users_username_not_reserved).';
{{ m.row_trigger('identity.users', 'users_username_not_reserved', 'before insert or update of username', 'private.users_username_rules') }}

-- private.check_username_available(username text) -> boolean
-- Returns true when the name is well formed (3-30 characters, a letter
-- first, then letters, digits or _), not reserved and not taken by another
-- user, compared case-insensitively. Refuses null or blank input (22023).
-- Callable by authenticated and service_role.
create or replace function private.check_username_available(username text)
  returns boolean
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
begin
  if username is null or btrim(username) = '' then
    raise exception 'check_username_available: a user name is required'
      using errcode = '22023';
  end if;
  return username ~ '^[A-Za-z][A-Za-z0-9_]{2,29}$'
    and not private.username_is_reserved(username)
    and not exists (
      select from identity.users u
      where lower(u.username) = lower(check_username_available.username)
        and u.id is distinct from auth.uid());
end
$fn$;
comment on function private.check_username_available is 'Definer twin of check_username_available: sees every profile to test uniqueness.';
{{ m.private_grants('check_username_available') }}
{{ m.api_function('check_username_available', 'p_username text', 'boolean', 'p_username',
   'Returns true when the user name is well formed, not reserved and not taken (case-insensitive). Null or blank: 22023. Callable by authenticated users.', stable=true) }}

-- private.complete_onboarding(user_id uuid) -> void
-- Marks the caller's own profile onboarded (idempotent: the first time is
-- kept). Refuses another user's id (42501) and a missing profile (P0002).
-- Definer because the onboarding flags are not client-writable columns.
-- Callable by authenticated users, for themselves.
create or replace function private.complete_onboarding(user_id uuid)
  returns void
  language plpgsql
  {{ m.definer() }}
as $fn$
begin
  if user_id is null or user_id is distinct from auth.uid() then
    raise exception 'complete_onboarding: you can only complete your own onboarding'
      using errcode = '42501';
  end if;
  update identity.users u
     set onboarding_completed = true,
         onboarding_completed_at = coalesce(u.onboarding_completed_at, now())
   where u.id = complete_onboarding.user_id;
  if not found then
    raise exception 'complete_onboarding: no profile for user %', user_id
      using errcode = 'P0002';
  end if;
end
$fn$;
comment on function private.complete_onboarding is 'Definer twin of complete_onboarding.';
{{ m.private_grants('complete_onboarding') }}
{{ m.api_function('complete_onboarding', 'p_user_id uuid', 'void', 'p_user_id',
   'Marks the caller\'s profile onboarded. Another user\'s id: 42501; no profile: P0002. Callable by authenticated users for themselves.') }}

{{ m.updated_at('identity.users') }}
{% if target == 'postgres' %}
{{ m.updated_at('identity.sessions') }}
{{ m.updated_at('identity.accounts') }}
{% endif %}
