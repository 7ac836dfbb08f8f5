-- access: the active organization (scope_request, active_organization,
-- is_active_member, the scoped helpers) and the mirrored grants of
-- organization_scoped. Refusals with their SQLSTATE and message, and that
-- a refused request is left as it was.
begin;
\ir _helpers.psql
select plan(22);

select tests.user('ursula@scope.test') as ursula \gset
select tests.user('otto@scope.test') as otto \gset
select id as personal from tenancy.organizations where personal_owner_id = :'ursula' \gset
select tests.act_as(:'ursula');
select create_organization('Scope B', 'scope-b') as org_b \gset
reset role;
select tests.act_as(:'otto');
select create_organization('Scope O', 'scope-o') as org_o \gset
reset role;

-- tests.request(user, claims, headers): PostgREST's role switch with a
-- token's extra claims and the request's headers, then its pre-request.
create function tests.request(user_id uuid, claims jsonb, headers jsonb) returns void
language sql as $$
  select set_config('request.jwt.claims', (jsonb_build_object('sub', user_id, 'role', 'authenticated') || claims)::text, true),
         set_config('request.headers', headers::text, true),
         set_config('role', 'authenticated', true);
$$;

-- Refusals: the request stays authenticated, nothing is switched.
select tests.request(:'ursula', jsonb_build_object('organization_id', :'org_o'), '{}');
select throws_ok('select public.scope_request()', '42501',
  format('you are not an active member of organization %s', :'org_o'), 'an organization the caller is not a member of is refused');
select is(current_user::text, 'authenticated', 'a refused request keeps its role');
select tests.request(:'ursula', '{}', '{"x-organization-id": "b"}');
select throws_ok('select public.scope_request()', '22P02', 'the active organization must be a uuid, not "b"', 'a malformed name is refused');
select tests.request(:'ursula', jsonb_build_object('organization_id', :'org_b'), jsonb_build_object('x-organization-id', :'personal'));
select throws_ok('select public.scope_request()', '22023',
  format('the token names organization %s and the X-Organization-Id header names %s', :'org_b', :'personal'),
  'a claim and a header naming different organizations are refused');
select is(current_user::text, 'authenticated', 'still authenticated');
reset role;

-- The helpers without a scope: what the caller may reach, and nothing else.
select tests.request(:'ursula', jsonb_build_object('organization_id', :'org_o'), '{}');
select is(private.active_organization(), :'org_o'::uuid, 'active_organization reads the claim');
select is(private.is_active_member(:'org_o'), false, 'is_active_member: not a member of O');
select is(private.is_active_member(:'org_b'), true, 'is_active_member: a member of B');
reset role;
select tests.request(:'ursula', '{}', '{"x-organization-id": "not-a-uuid"}');
select is(private.active_organization(), null, 'active_organization: a name that is not a uuid names nothing');
reset role;

-- Scoped to B through the header.
select tests.request(:'ursula', '{}', jsonb_build_object('x-organization-id', :'org_b'));
select public.scope_request();
select is(current_user::text, 'organization_scoped', 'the pre-request switched to organization_scoped');
select is(private.org_ids_with_permission('tenant.read'), array[:'org_b'::uuid], 'the helper answers with the active organization only');
select is(has_permission(:'personal', 'tenant.read'), false, 'has_permission: not in another organization of the caller');
select is(has_permission(:'org_b', 'member.invite'), true, 'has_permission: in the active organization');
select is((select array_agg(id) from tenancy.organizations), array[:'org_b'::uuid], 'the scoped request sees its organization only');
select throws_ok(format($$select invite_member(%L, 'new@scope.test')$$, :'personal'), '42501',
  format('permission member.invite is required in organization %s', :'personal'), 'an API function refuses another organization');
reset role;
select is((select count(*)::int from tenancy.invitations where email = 'new@scope.test'), 0, 'and wrote nothing');

-- A token naming the role itself, for someone else's organization: nothing.
select set_config('request.jwt.claims', json_build_object('sub', :'ursula', 'role', 'organization_scoped', 'organization_id', :'org_o')::text, true),
       set_config('role', 'organization_scoped', true);
select is((select count(*)::int from tenancy.organizations), 0, 'a token scoped to a foreign organization sees no organization');
select is(private.org_ids_with_permission('tenant.read'), '{}'::uuid[], 'and holds no permission');
reset role;

-- organization_scoped holds exactly authenticated's privileges.
select is((select count(*)::int from private.client_grant_differences()), 0, 'organization_scoped mirrors authenticated');
revoke select on billing.invoices from organization_scoped;
select results_eq($$select verb, kind, object, privilege_type from private.client_grant_differences()$$,
  $$values ('grant', 'table', 'billing.invoices', 'SELECT')$$, 'a missing grant is a difference');
select is(private.mirror_client_grants(), 1, 'mirror_client_grants makes the one grant');
select is((select count(*)::int from private.client_grant_differences()), 0, 'and they agree again');

select * from finish();
rollback;
