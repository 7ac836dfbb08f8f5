-- Signup: every auth user gets a profile, a personal organization and its
-- owner membership, atomically with the insert into auth.users.
{% import 'sql/macros.sql' as m with context %}

-- private.after_personal_organization_created(organization_id uuid, user_id uuid) -> void
-- The one place later domains hook into signup (billing gives the personal
-- organization its free subscription here). Does nothing yet.
create or replace function private.after_personal_organization_created(organization_id uuid, user_id uuid)
  returns void
  language plpgsql
  {{ m.definer() }}
as $fn$
begin
  return;
end
$fn$;
comment on function private.after_personal_organization_created is 'Signup hook: runs once per new personal organization, in the signup transaction.';
revoke all on function private.after_personal_organization_created from public, anon, authenticated;

-- private.provision_user(user_id uuid, email text, meta jsonb) -> uuid
-- Returns the user's personal organization, creating what is missing: the
-- profile, the personal organization (slug from the email and the id), the
-- owner membership. Idempotent. Refuses nothing itself; called by the
-- signup trigger and the backfill below, not by clients.
create or replace function private.provision_user(user_id uuid, email text, meta jsonb)
  returns uuid
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  local_part text := nullif(split_part(coalesce(email, ''), '@', 1), '');
  base_slug text;
  org uuid;
begin
  insert into identity.users (id, email, display_name)
  values (user_id, email, left(coalesce(nullif(meta ->> 'full_name', ''), nullif(meta ->> 'name', '')), 200))
  on conflict (id) do nothing;

  select o.id into org from tenancy.organizations o where o.personal_owner_id = provision_user.user_id;
  if found then
    return org;
  end if;

  base_slug := left(btrim(regexp_replace(lower(coalesce(local_part, 'user')), '[^a-z0-9]+', '-', 'g'), '-'), 40);
  if base_slug = '' then
    base_slug := 'user';
  end if;
  insert into tenancy.organizations (name, slug, org_type, is_personal, personal_owner_id)
  values (left(coalesce(nullif(btrim(meta ->> 'full_name'), ''), local_part, 'Personal'), 150) || '''s workspace',
          base_slug || '-' || left(replace(user_id::text, '-', ''), 12),
          'personal', true, user_id)
  returning id into org;
  insert into tenancy.memberships (organization_id, user_id, role_key)
  values (org, user_id, 'tenant_owner');
  perform private.after_personal_organization_created(org, user_id);
  return org;
end
$fn$;
comment on function private.provision_user is 'Creates what a user is missing of profile, personal organization and owner membership; returns the personal organization.';
revoke all on function private.provision_user from public, anon, authenticated;

-- private.handle_new_user() -> trigger
-- AFTER INSERT on auth.users: provisions the new user (see provision_user).
-- A failure aborts the signup itself, so no user is left half made.
create or replace function private.handle_new_user()
  returns trigger
  language plpgsql
  {{ m.definer() }}
as $fn$
begin
  perform private.provision_user(new.id, new.email, new.raw_user_meta_data);
  return null;
end
$fn$;
comment on function private.handle_new_user is 'Trigger on auth.users: profile, personal organization and owner membership in the signup transaction.';
{{ m.row_trigger('auth.users', 'on_auth_user_created', 'after insert', 'private.handle_new_user') }}

-- private.sync_user_email() -> trigger
-- AFTER UPDATE OF email on auth.users: keeps the profile's copy current, so
-- invitations match the address the user has now.
create or replace function private.sync_user_email()
  returns trigger
  language plpgsql
  {{ m.definer() }}
as $fn$
begin
  update identity.users u set email = new.email where u.id = new.id and u.email is distinct from new.email;
  return null;
end
$fn$;
comment on function private.sync_user_email is 'Trigger on auth.users: copies a changed email into identity.users.';
{{ m.row_trigger('auth.users', 'on_auth_user_email_changed', 'after update of email', 'private.sync_user_email') }}

-- Backfill: users that signed up before tenantdb was installed. Switching
-- the owner check to immediate afterwards runs its pending checks now, so no
-- trigger event is pending when the policies of this change alter the tables.
select private.provision_user(u.id, u.email, u.raw_user_meta_data)
  from auth.users u
 where not exists (select from tenancy.organizations o where o.personal_owner_id = u.id);
set constraints tenancy.organizations_keep_an_owner immediate;
set constraints tenancy.organizations_keep_an_owner deferred;
