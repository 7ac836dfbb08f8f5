-- tenancy: invitations cannot be used to climb or to come back, and a
-- suspended organization is read-only for its members.
begin;
\ir _helpers.psql
select plan(12);

select tests.user('owner@co.test') as owner \gset
select tests.user('admin@co.test') as admin \gset
select tests.user('alt@evil.test') as alt \gset
select tests.user('boss@co.test') as boss \gset

select tests.act_as(:'owner');
select create_organization('Co', 'co') as co \gset
reset role;
select tests.on_plan(:'co', 'pro');  -- seats for the members invited below
select tests.act_as(:'owner');
select token as tok_admin from invite_member(:'co', 'admin@co.test', 'tenant_admin') \gset
select invitation_id as inv_boss from invite_member(:'co', 'boss@co.test', 'tenant_owner') \gset
reset role;
select tests.act_as(:'admin');
select accept_invitation(:'tok_admin');

-- An admin cannot touch an invitation for a role above their own.
select throws_ok(format($$select revoke_invitation(%L, %L)$$, :'co', :'inv_boss'), '42501', null,
  'an admin cannot revoke an owner invitation');
select throws_ok(format($$select invite_member(%L, 'boss@co.test', 'tenant_member')$$, :'co'), '42501', null,
  'an admin cannot replace an owner invitation with a lesser one');
select is((select count(*)::int from tenancy.invitations where id = :'inv_boss' and revoked_at is null), 1,
  'the owner invitation is still pending');

-- A removed admin cannot come back through an invitation planted earlier.
select token as tok_alt from invite_member(:'co', 'alt@evil.test', 'tenant_admin') \gset
reset role;
select tests.act_as(:'owner');
select lives_ok(format($$select remove_member(%L, %L)$$, :'co', :'admin'), 'the owner removes the admin');
reset role;
select tests.act_as(:'alt');
select throws_ok(format($$select accept_invitation(%L)$$, :'tok_alt'), '55000',
  'accept_invitation: the member who sent this invitation may no longer extend it',
  'an invitation from a since-removed member is refused');
select is((select count(*)::int from tenancy.memberships where organization_id = :'co'), 0,
  'the refused invitee sees and gained nothing');
reset role;
select is((select count(*)::int from tenancy.memberships where organization_id = :'co' and user_id = :'alt'), 0,
  'no membership was written');

-- Suspended: members may read, not write; nobody joins.
select tests.act_as(:'owner');
select token as tok_late from invite_member(:'co', 'alt@evil.test', 'tenant_member') \gset
reset role;
update tenancy.organizations set status = 'suspended' where id = :'co';
select tests.act_as(:'owner');
select is((select count(*)::int from tenancy.organizations where id = :'co'), 1, 'members still read a suspended organization');
select is_empty(format($$update tenancy.organizations set name = 'Renamed' where id = %L returning id$$, :'co'),
  'a suspended organization cannot be renamed');
select throws_ok(format($$select invite_member(%L, 'new@co.test')$$, :'co'), '42501', null,
  'nobody invites into a suspended organization');
reset role;
select tests.act_as(:'alt');
select throws_ok(format($$select accept_invitation(%L)$$, :'tok_late'), '55000', 'accept_invitation: the organization is not active',
  'nobody joins a suspended organization');
reset role;
update tenancy.organizations set status = 'deleted' where id = :'co';
select tests.act_as(:'owner');
select is((select count(*)::int from tenancy.organizations where id = :'co'), 0, 'a deleted organization is hidden from its members');
reset role;

select * from finish();
rollback;
