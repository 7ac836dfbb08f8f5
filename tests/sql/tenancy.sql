-- tenancy: organizations, invitations, membership changes, the owner rule.
begin;
\ir _helpers.psql
select plan(37);

select tests.user('olivia@acme.test') as olivia \gset
select tests.user('adam@acme.test') as adam \gset
select tests.user('mia@acme.test') as mia \gset
select tests.user('eve@evil.test') as eve \gset

-- create_organization
select tests.act_as(:'olivia');
select create_organization('Acme', 'acme') as acme \gset
select is((select role_key from tenancy.memberships where organization_id = :'acme' and user_id = :'olivia'), 'tenant_owner',
  'the creator owns the new organization');
select throws_ok($$select create_organization('Acme 2', 'acme')$$, '23505', null, 'a taken slug is refused');
select throws_ok($$select create_organization('Mine', 'mine', 'personal')$$, '22023', null, 'personal organizations are made at signup only');
select throws_ok($$select create_organization('Bad', 'Bad Slug')$$, '23514', null, 'a malformed slug is refused (organizations_slug_format)');
reset role;
select tests.act_as_anon();
select throws_ok($$select create_organization('Anon', 'anon-org')$$, '42501', null, 'anon cannot create an organization');
reset role;
select tests.on_plan(:'acme', 'pro');  -- seats for the members invited below

-- invite and accept
select tests.act_as(:'olivia');
select invitation_id as inv_adam, token as tok_adam from invite_member(:'acme', 'Adam@Acme.test', 'tenant_admin') \gset
select is((select count(*)::int from tenancy.invitations where organization_id = :'acme' and token_hash = encode(sha256(convert_to(:'tok_adam', 'UTF8')), 'hex')), 1,
  'only the hash of the token is stored');
select throws_ok(format($$select invite_member(%L, 'not-an-email')$$, :'acme'), '22023', null, 'a malformed email is refused');
select throws_ok(format($$select invite_member(%L, 'x@y.test', 'platform_admin')$$, :'acme'), '22023', null, 'a system role cannot be invited');
select throws_ok(format($$select invite_member(%L, 'x@y.test', 'tenant_member', interval '90 days')$$, :'acme'), '22023', null,
  'an invitation valid for 90 days is refused');
reset role;

select tests.act_as(:'eve');
select throws_ok(format($$select invite_member(%L, 'eve2@evil.test')$$, :'acme'), '42501', null, 'an outsider cannot invite');
select throws_ok(format($$select accept_invitation(%L)$$, :'tok_adam'), '42501', null, 'an invitation for another address is refused');
select throws_ok($$select accept_invitation('no-such-token')$$, 'P0002', null, 'an unknown token is refused');
reset role;

select tests.act_as(:'adam');
select is(accept_invitation(:'tok_adam'), :'acme'::uuid, 'the invitee joins with the matching address (any case)');
select throws_ok(format($$select accept_invitation(%L)$$, :'tok_adam'), '55000', null, 'an invitation is accepted once');
-- An admin cannot hand out ownership: the owner role carries permissions an admin lacks.
select throws_ok(format($$select invite_member(%L, 'mia@acme.test', 'tenant_owner')$$, :'acme'), '42501', null,
  'an admin cannot invite an owner');
select token as tok_mia, invitation_id as inv_mia from invite_member(:'acme', 'mia@acme.test', 'tenant_member') \gset
select lives_ok(format($$select revoke_invitation(%L, %L)$$, :'acme', :'inv_mia'), 'an admin revokes an invitation');
select throws_ok(format($$select revoke_invitation(%L, %L)$$, :'acme', :'inv_mia'), '55000', null, 'an invitation is revoked once');
select throws_ok(format($$select revoke_invitation(%L, gen_random_uuid())$$, :'acme'), 'P0002', null, 'revoking an unknown invitation is refused');
reset role;

select tests.act_as(:'mia');
select throws_ok(format($$select accept_invitation(%L)$$, :'tok_mia'), '55000', null, 'a revoked invitation cannot be accepted');
reset role;
select tests.act_as(:'adam');
select token as tok_mia2 from invite_member(:'acme', 'mia@acme.test', 'tenant_member') \gset
reset role;
update tenancy.invitations set created_at = now() - interval '10 days', expires_at = now() - interval '1 day'
 where token_hash = encode(sha256(convert_to(:'tok_mia2', 'UTF8')), 'hex');
select tests.act_as(:'mia');
select throws_ok(format($$select accept_invitation(%L)$$, :'tok_mia2'), '55000', null, 'an expired invitation cannot be accepted');
reset role;
select tests.act_as(:'adam');
select token as tok_mia3 from invite_member(:'acme', 'mia@acme.test', 'tenant_member') \gset
reset role;
select tests.act_as(:'mia');
select lives_ok(format($$select accept_invitation(%L)$$, :'tok_mia3'), 'a fresh invitation is accepted');
select throws_ok(format($$select remove_member(%L, %L)$$, :'acme', :'adam'), '42501', null, 'a member without member.remove cannot remove');
select throws_ok(format($$select revoke_invitation(%L, %L)$$, :'acme', :'inv_mia'), '42501', null, 'a member without member.invite cannot revoke');
select is((select count(*)::int from tenancy.invitations), 0, 'a member without member.invite sees no invitations');
reset role;

-- remove, leave, transfer, and the owner rule
select tests.act_as(:'adam');
select throws_ok(format($$select remove_member(%L, %L)$$, :'acme', :'olivia'), '42501', null, 'an admin cannot remove the owner');
select lives_ok(format($$select remove_member(%L, %L)$$, :'acme', :'mia'), 'an admin removes a member');
select throws_ok(format($$select remove_member(%L, %L)$$, :'acme', :'mia'), 'P0002', null, 'removing a non-member is refused');
select throws_ok(format($$select leave_organization(%L)$$, tests.personal_org(:'adam')), '55000', null, 'nobody leaves their personal organization');
select throws_ok(format($$select leave_organization(%L)$$, tests.personal_org(:'olivia')), 'P0002', null, 'leaving an organization one is not in is refused');
reset role;

select tests.act_as(:'olivia');
set constraints tenancy.organizations_keep_an_owner immediate;
select throws_ok(format($$select leave_organization(%L)$$, :'acme'), '23514', null, 'the last owner cannot leave');
select throws_ok(format($$select transfer_ownership(%L, %L)$$, :'acme', :'eve'), '22023', null, 'ownership goes only to a member');
select lives_ok(format($$select transfer_ownership(%L, %L)$$, :'acme', :'adam'), 'the owner transfers ownership');
select is((select role_key from tenancy.memberships where organization_id = :'acme' and user_id = :'olivia'), 'tenant_admin',
  'the former owner becomes an admin');
select throws_ok(format($$select transfer_ownership(%L, %L)$$, :'acme', :'olivia'), '42501', null, 'a former owner cannot transfer again');
reset role;
select throws_ok(format($$delete from tenancy.memberships where organization_id = %L and role_key = 'tenant_owner'$$, :'acme'), '23514',
  'organization ' || :'acme' || ' must keep at least one active owner', 'not even the table owner can leave an organization without an owner');

-- A member leaves; updated_at is stamped by the trigger.
select tests.act_as(:'olivia');
select lives_ok(format($$select leave_organization(%L)$$, :'acme'), 'a member who is not the last owner leaves');
reset role;
update tenancy.organizations set created_at = now() - interval '1 day', updated_at = now() - interval '1 day' where id = :'acme';
update tenancy.organizations set name = 'Acme Inc' where id = :'acme';
select ok((select updated_at = now() from tenancy.organizations where id = :'acme'), 'an update stamps updated_at');

select * from finish();
rollback;
