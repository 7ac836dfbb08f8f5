-- Issue 10's confirmed defects, replayed from the attacker's side through
-- PostgREST's role switch: each was possible before the fix.
begin;
\ir _helpers.psql
select plan(17);

select tests.user('olga@corp.test') as olga \gset
select tests.user('mallory@corp.test') as mallory \gset
select tests.user('nick@corp.test') as nick \gset

select tests.act_as(:'olga');
select create_organization('Corp', 'corp') as corp \gset
reset role;
select tests.on_plan(:'corp', 'pro');  -- seats for the members invited below
select tests.act_as(:'olga');
select token as tok_mallory from invite_member(:'corp', 'mallory@corp.test', 'tenant_owner') \gset
select token as tok_nick from invite_member(:'corp', 'nick@corp.test', 'tenant_member') \gset
reset role;
select tests.act_as(:'mallory');
select accept_invitation(:'tok_mallory');
reset role;
select tests.act_as(:'nick');
select accept_invitation(:'tok_nick');
reset role;

-- 1. A removed owner plants an owner invitation, is removed, deletes her
--    account; the invitation has no inviter left and opens nothing.
select tests.act_as(:'mallory');
select token as tok_planted from invite_member(:'corp', 'mallory.alt@corp.test', 'tenant_owner') \gset
reset role;
select tests.act_as(:'olga');
select remove_member(:'corp', :'mallory');
reset role;
delete from auth.users where id = :'mallory';
select is((select invited_by from tenancy.invitations where lower(email) = 'mallory.alt@corp.test'), null::uuid,
  'the deleted inviter is gone from the pending invitation');
select tests.user('mallory.alt@corp.test') as alt \gset
select tests.act_as(:'alt');
select throws_ok(format($$select accept_invitation(%L)$$, :'tok_planted'), '55000',
  'accept_invitation: the member who sent this invitation may no longer extend it',
  'an invitation whose inviter''s account was deleted cannot be accepted');
reset role;
select is((select count(*)::int from tenancy.memberships where organization_id = :'corp' and user_id = :'alt'), 0,
  'the second address did not join');

-- 3. Ownership does not change in a deleted organization; it is audited
--    where it does change.
select count(*) as ownership_rows from audit.platform_actions where target_table = 'tenancy.memberships' \gset
select tests.act_as(:'olga');
select transfer_ownership(:'corp', :'nick');
reset role;
select is((select count(*)::int from audit.platform_actions where target_table = 'tenancy.memberships'), :ownership_rows + 2,
  'a transfer writes two audit rows: the new owner and the old one''s demotion');
select tests.act_as(:'nick');
select transfer_ownership(:'corp', :'olga');
reset role;
update tenancy.organizations set status = 'deleted' where id = :'corp';
select tests.act_as(:'olga');
select throws_ok(format($$select transfer_ownership(%L, %L)$$, :'corp', :'nick'), '55000', null,
  'no transfer of ownership in a deleted organization');
reset role;
select tests.act_as(:'nick');
select throws_ok(format($$select leave_organization(%L)$$, :'corp'), '55000', null,
  'no leaving a deleted organization either (its memberships are frozen)');
reset role;
select is((select array_agg(role_key order by role_key) from tenancy.memberships where organization_id = :'corp'),
  array['tenant_admin', 'tenant_owner'], 'the memberships of the deleted organization are unchanged');
update tenancy.organizations set status = 'suspended' where id = :'corp';
select tests.act_as(:'nick');
select throws_ok(format($$select leave_organization(%L)$$, :'corp'), '55000', null,
  'a suspended organization is read-only: no leaving');
reset role;
select lives_ok(format($$update tenancy.memberships set role_key = 'tenant_owner' where organization_id = %L and user_id = %L$$, :'corp', :'nick'),
  'the back end (a trusted caller) may still repair a suspended organization');
update tenancy.organizations set status = 'active' where id = :'corp';

-- 5. A request switched to authenticated whose claims say service_role is
--    not the back end.
select set_config('request.jwt.claims', json_build_object('sub', :'nick', 'role', 'service_role')::text, true),
       set_config('role', 'authenticated', true);
select throws_ok(format($$select platform_account_type(%L)$$, :'olga'), '42501', null,
  'a forged service_role claim does not make platform_account_type answer about another user');
select throws_ok(format($$select record_usage(%L, 'api_call', 1, 'forged')$$, tests.personal_org(:'olga')), '42501', null,
  'nor does it let a non-member record usage as the back end would');
reset role;
set local role service_role;
select lives_ok(format($$select platform_account_type(%L)$$, :'olga'), 'the service_role database role is the back end');
reset role;

-- 4. Private helpers: an outsider cannot ask billing_period about
--    another organization's calendar (verify checks the whole class).
select tests.act_as(:'alt');
select throws_ok(format($$select * from private.billing_period(%L, now())$$, :'corp'), '42501', null,
  'billing_period is not callable by a signed-in user');
reset role;

-- The same class as 1: an impersonation token whose impersonator lost the
-- permission (grant revoked, or account deleted) opens nothing.
select tests.user('sam@platform.test') as sam \gset
select tests.grant_system_role(:'sam', 'platform_support');
select tests.act_as(:'sam');
select start_impersonation(:'olga', 'support ticket 42', 30) as sess \gset
reset role;
select set_config('request.jwt.claims', json_build_object('sub', :'olga', 'role', 'authenticated', 'impersonation_session', :'sess')::text, true),
       set_config('role', 'authenticated', true);
select ok((select count(*) from tenancy.memberships where organization_id = :'corp') > 0, 'the live impersonation reads as the user');
reset role;
update iam.system_role_grants set revoked_at = now(), revoke_reason = 'left the company' where user_id = :'sam';
select set_config('request.jwt.claims', json_build_object('sub', :'olga', 'role', 'authenticated', 'impersonation_session', :'sess')::text, true),
       set_config('role', 'authenticated', true);
select is((select count(*)::int from tenancy.memberships where organization_id = :'corp'), 0,
  'once the impersonator''s grant is revoked, the token reads nothing');
select is(has_permission(:'corp', 'tenant.read'), false, 'and holds no permission');
reset role;
select set_config('request.jwt.claims', json_build_object('sub', :'olga', 'role', 'authenticated')::text, true),
       set_config('role', 'authenticated', true);
select ok((select count(*) from tenancy.memberships where organization_id = :'corp') > 0, 'the user''s own token still reads');
reset role;

select * from finish();
rollback;
