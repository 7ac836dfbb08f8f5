-- tenancy: the owner invariant and the functions that change memberships.
-- Each private.X is SECURITY DEFINER (memberships and invitations have no
-- write policies), checks the caller's permission itself, and has a
-- SECURITY INVOKER twin in the API schema.
{% import 'sql/macros.sql' as m with context %}

-- private.organizations_keep_an_owner() -> trigger
-- Deferred constraint trigger on organizations (insert) and memberships
-- (update, delete): refuses (23514, organizations_keep_an_owner) a commit
-- that leaves an existing organization without an active tenant_owner.
create or replace function private.organizations_keep_an_owner()
  returns trigger
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  org uuid;
begin
  if tg_table_name = 'organizations' then
    org := new.id;
  else
    org := old.organization_id;
  end if;
  -- Serialize owner checks per organization: without the lock, two owners
  -- leaving at once each still see the other and both commit.
  -- A deleted organization grants nothing, so it needs no owner (it may
  -- have lost its last one with the owner's account).
  perform from tenancy.organizations o where o.id = org and o.status <> 'deleted' for no key update;
  if found
     and not exists (select from tenancy.memberships m
                      where m.organization_id = org and m.role_key = 'tenant_owner' and m.status = 'active') then
    raise exception 'organization % must keep at least one active owner', org
      using errcode = '23514', constraint = 'organizations_keep_an_owner',
            hint = 'Transfer ownership before removing or demoting the last owner.';
  end if;
  return null;
end
$fn$;
comment on function private.organizations_keep_an_owner is 'Deferred trigger: an organization always keeps an active tenant_owner (23514). Locks the organization row, so concurrent removals are checked one after the other (READ COMMITTED and SERIALIZABLE).';
revoke all on function private.organizations_keep_an_owner from public;
drop trigger if exists organizations_keep_an_owner on tenancy.organizations;
create constraint trigger organizations_keep_an_owner
  after insert on tenancy.organizations
  deferrable initially deferred
  for each row execute function private.organizations_keep_an_owner();
drop trigger if exists organizations_keep_an_owner on tenancy.memberships;
create constraint trigger organizations_keep_an_owner
  after update or delete on tenancy.memberships
  deferrable initially deferred
  for each row execute function private.organizations_keep_an_owner();

-- private.require_role_within_reach(organization_id uuid, role_key text) -> void
-- Refuses (42501) handing out a role that carries a permission the caller
-- lacks in the organization, and (22023) an unknown or system role.
create or replace function private.require_role_within_reach(organization_id uuid, role_key text)
  returns void
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
begin
  if not exists (select from iam.roles r where r.key = require_role_within_reach.role_key and not r.is_system) then
    raise exception 'unknown tenant role "%"', role_key
      using errcode = '22023', hint = 'Tenant roles are the rows of iam.roles with is_system = false.';
  end if;
  if exists (select from iam.role_permissions rp
              where rp.role_key = require_role_within_reach.role_key
                and not private.has_permission(require_role_within_reach.organization_id, rp.permission_key)) then
    raise exception 'role % carries permissions you do not hold in organization %', role_key, organization_id
      using errcode = '42501';
  end if;
end
$fn$;
comment on function private.require_role_within_reach is 'Raises unless every permission of the tenant role is held by the caller in the organization.';
{{ m.private_grants('require_role_within_reach', 'service_role') }}

-- private.create_organization(name text, slug text, org_type text) -> uuid
-- Returns the new organization's id; the caller becomes its tenant_owner.
-- Refuses: signed out (42501); a personal type or bad name/slug/type
-- (22023 or the table's named check constraints); a taken slug (23505,
-- organizations_slug_unique). Callable by authenticated users.
create or replace function private.create_organization(name text, slug text, org_type text)
  returns uuid
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  caller uuid := auth.uid();
  org uuid;
begin
  if caller is null then
    raise exception 'create_organization: sign-in required' using errcode = '42501';
  end if;
  if org_type = 'personal' then
    raise exception 'create_organization: personal organizations are made at signup only'
      using errcode = '22023';
  end if;
  insert into tenancy.organizations (name, slug, org_type)
  values (create_organization.name, create_organization.slug, coalesce(create_organization.org_type, 'business'))
  returning id into org;
  insert into tenancy.memberships (organization_id, user_id, role_key)
  values (org, caller, 'tenant_owner');
  return org;
end
$fn$;
comment on function private.create_organization is 'Definer twin of create_organization.';
{{ m.private_grants('create_organization') }}
{{ m.api_function('create_organization', "p_name text, p_slug text, p_org_type text default 'business'", 'uuid', 'p_name, p_slug, p_org_type',
   'Creates an organization with the caller as owner and returns its id. Signed out: 42501; personal type: 22023; taken slug: 23505. Callable by authenticated users.') }}

-- private.invite_member(organization_id uuid, email text, role_key text, valid_for interval)
--   -> table (invitation_id uuid, token text)
-- Returns the invitation and its token (shown once; only its sha256 is
-- stored). Replaces a pending invitation to the same address. Refuses:
-- without member.invite (42501); a role, or a pending invitation's role,
-- with permissions the caller lacks (42501); unknown or system role, bad email, validity outside 1 hour to
-- 30 days, an address that already belongs to a member (22023).
-- Callable by authenticated users.
create or replace function private.invite_member(organization_id uuid, email text, role_key text, valid_for interval)
  returns table (invitation_id uuid, token text)
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  secret text := replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');
  new_id uuid;
begin
  perform private.require_permission(invite_member.organization_id, 'member.invite');
  perform private.require_role_within_reach(invite_member.organization_id, invite_member.role_key);
  if valid_for is null or valid_for < interval '1 hour' or valid_for > interval '30 days' then
    raise exception 'invite_member: valid_for must be between 1 hour and 30 days' using errcode = '22023';
  end if;
  if email is null or email !~ '^[^@\s]+@[^@\s]+\.[^@\s]+$' then
    raise exception 'invite_member: "%" is not an email address', email using errcode = '22023';
  end if;
  if exists (select from tenancy.memberships m join identity.users u on u.id = m.user_id
              where m.organization_id = invite_member.organization_id
                and lower(u.email) = lower(invite_member.email)) then
    raise exception 'invite_member: % is already a member', email using errcode = '22023';
  end if;
  -- The pending invitation this one replaces must be within reach too.
  perform private.require_role_within_reach(invite_member.organization_id, i.role_key)
     from tenancy.invitations i
    where i.organization_id = invite_member.organization_id
      and lower(i.email) = lower(invite_member.email)
      and i.accepted_at is null and i.revoked_at is null;
  update tenancy.invitations i
     set revoked_at = now(), revoked_by = auth.uid()
   where i.organization_id = invite_member.organization_id
     and lower(i.email) = lower(invite_member.email)
     and i.accepted_at is null and i.revoked_at is null;
  insert into tenancy.invitations (organization_id, email, role_key, token_hash, invited_by, expires_at)
  values (invite_member.organization_id, invite_member.email, invite_member.role_key,
          encode(sha256(convert_to(secret, 'UTF8')), 'hex'), auth.uid(), now() + valid_for)
  returning id into new_id;
  return query select new_id, secret;
end
$fn$;
comment on function private.invite_member is 'Definer twin of invite_member.';
{{ m.private_grants('invite_member') }}
{{ m.api_function('invite_member', "p_organization_id uuid, p_email text, p_role_key text default 'tenant_member', p_valid_for interval default interval '7 days'",
   'table (invitation_id uuid, token text)', 'p_organization_id, p_email, p_role_key, p_valid_for',
   'Invites an email address and returns the invitation id and its one-time token. Needs member.invite and every permission of the role (42501); bad input: 22023. Callable by authenticated users.') }}

-- private.accept_invitation(token text) -> uuid
-- Returns the organization joined. Refuses: signed out (42501); unknown
-- token (P0002); an invitation for another email address (42501); one that
-- is expired, revoked or already accepted, an organization not active, an
-- inviter who no longer holds member.invite and the role's permissions, or
-- a caller already a member (55000). Callable by authenticated users.
create or replace function private.accept_invitation(token text)
  returns uuid
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  caller uuid := auth.uid();
  inv tenancy.invitations;
begin
  if caller is null then
    raise exception 'accept_invitation: sign-in required' using errcode = '42501';
  end if;
  select * into inv from tenancy.invitations i
   where i.token_hash = encode(sha256(convert_to(coalesce(accept_invitation.token, ''), 'UTF8')), 'hex')
   for update;
  if not found then
    raise exception 'accept_invitation: no invitation has this token' using errcode = 'P0002';
  end if;
  if not exists (select from identity.users u where u.id = caller and lower(u.email) = lower(inv.email)) then
    raise exception 'accept_invitation: this invitation is for another email address' using errcode = '42501';
  end if;
  if inv.revoked_at is not null then
    raise exception 'accept_invitation: the invitation was revoked' using errcode = '55000';
  end if;
  if inv.accepted_at is not null then
    raise exception 'accept_invitation: the invitation was already accepted' using errcode = '55000';
  end if;
  if inv.expires_at <= now() then
    raise exception 'accept_invitation: the invitation expired at %', inv.expires_at using errcode = '55000';
  end if;
  if not exists (select from tenancy.organizations o where o.id = inv.organization_id and o.status = 'active') then
    raise exception 'accept_invitation: the organization is not active' using errcode = '55000';
  end if;
  -- The inviter must still be entitled to extend it: a member removed since
  -- cannot let themselves back in through an invitation planted earlier,
  -- and an invitation whose inviter's account is gone (invited_by set to
  -- null by the deletion) has nobody left to vouch for it.
  if inv.invited_by is null or (
       not private.user_has_permission(inv.organization_id, inv.invited_by, 'member.invite')
       or exists (select from iam.role_permissions rp
                   where rp.role_key = inv.role_key
                     and not private.user_has_permission(inv.organization_id, inv.invited_by, rp.permission_key))) then
    raise exception 'accept_invitation: the member who sent this invitation may no longer extend it'
      using errcode = '55000', hint = 'Ask the organization for a new invitation.';
  end if;
  if exists (select from tenancy.memberships m where m.organization_id = inv.organization_id and m.user_id = caller) then
    raise exception 'accept_invitation: you are already a member' using errcode = '55000';
  end if;
  insert into tenancy.memberships (organization_id, user_id, role_key, invited_by)
  values (inv.organization_id, caller, inv.role_key, inv.invited_by);
  update tenancy.invitations i set accepted_at = now(), accepted_by = caller
   where i.organization_id = inv.organization_id and i.id = inv.id;
  return inv.organization_id;
end
$fn$;
comment on function private.accept_invitation is 'Definer twin of accept_invitation.';
{{ m.private_grants('accept_invitation') }}
{{ m.api_function('accept_invitation', 'p_token text', 'uuid', 'p_token',
   'Joins the organization of the invitation and returns its id. Wrong email: 42501; unknown token: P0002; expired, revoked, used or already a member: 55000. Callable by authenticated users.') }}

-- private.revoke_invitation(organization_id uuid, invitation_id uuid) -> void
-- Revokes a pending invitation. Refuses: without member.invite, or for a
-- role carrying permissions the caller lacks (42501); unknown invitation
-- (P0002); one already accepted or revoked (55000).
create or replace function private.revoke_invitation(organization_id uuid, invitation_id uuid)
  returns void
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  inv tenancy.invitations;
begin
  perform private.require_permission(revoke_invitation.organization_id, 'member.invite');
  select * into inv from tenancy.invitations i
   where i.organization_id = revoke_invitation.organization_id and i.id = revoke_invitation.invitation_id
   for update;
  if not found then
    raise exception 'revoke_invitation: no invitation % in organization %', invitation_id, organization_id
      using errcode = 'P0002';
  end if;
  if inv.accepted_at is not null or inv.revoked_at is not null then
    raise exception 'revoke_invitation: the invitation is no longer pending' using errcode = '55000';
  end if;
  perform private.require_role_within_reach(revoke_invitation.organization_id, inv.role_key);
  update tenancy.invitations i set revoked_at = now(), revoked_by = auth.uid()
   where i.organization_id = inv.organization_id and i.id = inv.id;
end
$fn$;
comment on function private.revoke_invitation is 'Definer twin of revoke_invitation.';
{{ m.private_grants('revoke_invitation') }}
{{ m.api_function('revoke_invitation', 'p_organization_id uuid, p_invitation_id uuid', 'void', 'p_organization_id, p_invitation_id',
   'Revokes a pending invitation. Needs member.invite (42501); unknown: P0002; not pending: 55000. Callable by authenticated users.') }}

-- private.remove_member(organization_id uuid, user_id uuid) -> void
-- Removes another member. Refuses: without member.remove, or a member whose
-- role carries permissions the caller lacks (42501); removing oneself
-- (22023: use leave_organization); not a member (P0002); the personal
-- organization's owner (55000); the last owner (23514 at commit).
create or replace function private.remove_member(organization_id uuid, user_id uuid)
  returns void
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  target tenancy.memberships;
begin
  perform private.require_permission(remove_member.organization_id, 'member.remove');
  if remove_member.user_id = auth.uid() then
    raise exception 'remove_member: use leave_organization to leave' using errcode = '22023';
  end if;
  select * into target from tenancy.memberships m
   where m.organization_id = remove_member.organization_id and m.user_id = remove_member.user_id
   for update;
  if not found then
    raise exception 'remove_member: user % is not a member of organization %', user_id, organization_id
      using errcode = 'P0002';
  end if;
  if exists (select from tenancy.organizations o
              where o.id = remove_member.organization_id and o.personal_owner_id = remove_member.user_id) then
    raise exception 'remove_member: the owner of a personal organization cannot be removed' using errcode = '55000';
  end if;
  perform private.require_role_within_reach(remove_member.organization_id, target.role_key);
  delete from tenancy.memberships m
   where m.organization_id = remove_member.organization_id and m.user_id = remove_member.user_id;
end
$fn$;
comment on function private.remove_member is 'Definer twin of remove_member.';
{{ m.private_grants('remove_member') }}
{{ m.api_function('remove_member', 'p_organization_id uuid, p_user_id uuid', 'void', 'p_organization_id, p_user_id',
   'Removes a member. Needs member.remove and every permission of their role (42501); self: 22023; not a member: P0002; personal owner: 55000; last owner: 23514. Callable by authenticated users.') }}

-- private.leave_organization(organization_id uuid) -> void
-- Ends the caller's own membership. Refuses: not a member (P0002); one's
-- personal organization (55000); the last owner (23514 at commit).
create or replace function private.leave_organization(organization_id uuid)
  returns void
  language plpgsql
  {{ m.definer() }}
as $fn$
begin
  if exists (select from tenancy.organizations o
              where o.id = leave_organization.organization_id and o.personal_owner_id = auth.uid()) then
    raise exception 'leave_organization: you cannot leave your personal organization' using errcode = '55000';
  end if;
  delete from tenancy.memberships m
   where m.organization_id = leave_organization.organization_id and m.user_id = auth.uid();
  if not found then
    raise exception 'leave_organization: you are not a member of organization %', organization_id
      using errcode = 'P0002';
  end if;
end
$fn$;
comment on function private.leave_organization is 'Definer twin of leave_organization.';
{{ m.private_grants('leave_organization') }}
{{ m.api_function('leave_organization', 'p_organization_id uuid', 'void', 'p_organization_id',
   'Ends the caller\'s membership. Not a member: P0002; personal organization: 55000; last owner: 23514. Callable by authenticated users.') }}

-- private.transfer_ownership(organization_id uuid, new_owner_id uuid) -> void
-- Makes an active member the owner; the caller becomes tenant_admin.
-- Refuses: caller not an active owner (42501); new owner not an active
-- member, or the caller (22023); a personal organization (55000).
create or replace function private.transfer_ownership(organization_id uuid, new_owner_id uuid)
  returns void
  language plpgsql
  {{ m.definer() }}
as $fn$
begin
  if not exists (select from tenancy.memberships m
                  where m.organization_id = transfer_ownership.organization_id and m.user_id = auth.uid()
                    and m.role_key = 'tenant_owner' and m.status = 'active') then
    raise exception 'transfer_ownership: only an owner can transfer ownership' using errcode = '42501';
  end if;
  if exists (select from tenancy.organizations o where o.id = transfer_ownership.organization_id and o.is_personal) then
    raise exception 'transfer_ownership: a personal organization keeps its owner' using errcode = '55000';
  end if;
  if new_owner_id is null or new_owner_id = auth.uid() then
    raise exception 'transfer_ownership: choose another member as the new owner' using errcode = '22023';
  end if;
  update tenancy.memberships m set role_key = 'tenant_owner'
   where m.organization_id = transfer_ownership.organization_id and m.user_id = new_owner_id and m.status = 'active';
  if not found then
    raise exception 'transfer_ownership: user % is not an active member', new_owner_id using errcode = '22023';
  end if;
  update tenancy.memberships m set role_key = 'tenant_admin'
   where m.organization_id = transfer_ownership.organization_id and m.user_id = auth.uid();
end
$fn$;
comment on function private.transfer_ownership is 'Definer twin of transfer_ownership.';
{{ m.private_grants('transfer_ownership') }}
{{ m.api_function('transfer_ownership', 'p_organization_id uuid, p_new_owner_id uuid', 'void', 'p_organization_id, p_new_owner_id',
   'Hands ownership to an active member; the caller becomes tenant_admin. Not an owner: 42501; bad new owner: 22023; personal organization: 55000. Callable by authenticated users.') }}

-- private.memberships_follow_organization_status() -> trigger
-- BEFORE INSERT/UPDATE/DELETE row trigger on tenancy.memberships: the
-- memberships of a suspended or deleted organization do not change, by
-- whatever function or statement (55000) — a deleted organization grants
-- nothing, ownership included. Let through: the back end
-- (is_trusted_caller: support repairing an organization), and the
-- cascades of deleting the organization or the member's account (the
-- referenced row is already gone).
create or replace function private.memberships_follow_organization_status()
  returns trigger
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  org uuid := case when tg_op = 'DELETE' then old.organization_id else new.organization_id end;
  org_status text;
begin
  select o.status into org_status from tenancy.organizations o where o.id = org;
  if org_status is null or org_status = 'active' or private.is_trusted_caller()
     or (tg_op = 'DELETE' and not exists (select from identity.users u where u.id = old.user_id)) then
    return case when tg_op = 'DELETE' then old else new end;
  end if;
  raise exception 'organization % is %: its memberships cannot change', org, org_status
    using errcode = '55000', hint = 'Reactivate the organization first (platform staff).';
end
$fn$;
comment on function private.memberships_follow_organization_status is 'Trigger: memberships of a suspended or deleted organization do not change (55000), except from the back end and by cascade.';
{{ m.row_trigger('tenancy.memberships', 'follow_organization_status', 'before insert or update or delete', 'private.memberships_follow_organization_status') }}

{{ m.updated_at('tenancy.organizations') }}
{{ m.updated_at('tenancy.memberships') }}
