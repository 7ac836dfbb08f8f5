-- client_services (issue 9, seed 000): what tests/test_client_services.py
-- does not run — the currency table and the accounts id, the trigger
-- functions' other refusals (status, slug, plan, roles, permissions,
-- provider ids, read-only columns), the paths of the back end and of
-- platform staff, idempotent usage, top-ups in transactions.
begin;
\ir _helpers.psql
select plan(54);

-- act_as_service_for(user): the back end (service role) acting for a user,
-- whose id it passes as sub.
create function tests.act_as_service_for(user_id uuid) returns void
language sql as $$
  select set_config('request.jwt.claims', json_build_object('sub', user_id, 'role', 'service_role')::text, true),
         set_config('role', 'service_role', true);
$$;
grant execute on function tests.act_as_service_for to public;

select tests.user('olga@cs.test') as olga \gset
select tests.user('mel@cs.test') as mel \gset
select tests.user('gus@cs.test') as gus \gset
select tests.user('ada@cs.test') as ada \gset
select tests.user('stan@cs.test') as stan \gset
select tests.grant_system_role(:'stan', 'platform_admin');

-- The currency table and the accounts id.
select is(private.currency_exponent('USD'), 2, 'USD has cents');
select is(private.currency_exponent('jpy'), 0, 'JPY has no minor unit (the code is read case-insensitively)');
select is(private.currency_exponent('KWD'), 3, 'KWD has thousandths');
select is(private.currency_exponent('CLF'), 4, 'CLF has four decimals');
select is(private.currency_exponent('XAU'), null, 'gold has no minor unit');
select ok(not exists (select from catalog.plans p where private.currency_exponent(p.currency) is null),
  'every plan of the catalog is in a currency with minor units');
select private.client_services_account_id(:'olga', :'mel') as some_id \gset
select ok(substr(:'some_id', 15, 1) = '3' and substr(:'some_id', 20, 1) in ('8', '9', 'a', 'b'),
  'an account id is an RFC 4122 version 3 uuid');
select isnt(private.client_services_account_id(:'olga', :'mel'), private.client_services_account_id(:'olga', :'gus'),
  'each membership has its own id');

-- Organizations, as a signed-in user.
select tests.act_as(:'olga');
insert into client_services.organizations (name, slug) values ('CS Org', 'cs-org') returning id as org \gset
select is((select plan_type from client_services.organizations where id = :'org'), 'free',
  'an organization created without plan_type is on the free plan');
select is((select role_key from tenancy.memberships where organization_id = :'org' and user_id = :'olga'), 'tenant_owner',
  'its creator owns it');
select throws_ok($$insert into client_services.organizations (name, slug, status) values ('Paused', 'paused', 'suspended')$$,
  '22023', null, 'a new organization is active');
select throws_ok($$insert into client_services.organizations (name, slug) values ('Again', 'cs-org')$$,
  '23505', null, 'a taken slug is refused by the table');
select throws_ok($$insert into client_services.organizations (name, slug, plan_type) values ('Pro', 'pro-org', 'pro')$$,
  '42501', 'client_services.organizations: plan pro is sold, not chosen: only the service role or platform staff with platform.billing.adjust may start an organization on it',
  'a member does not choose a paid plan');
select throws_ok($$insert into client_services.organizations (name, slug, metadata) values ('Arr', 'arr-org', '[1]')$$,
  '23514', null, 'metadata must be an object (the table''s check)');
update client_services.organizations set name = 'CS Renamed' where id = :'org';
select is((select name from tenancy.organizations where id = :'org'), 'CS Renamed', 'an owner renames it (tenant.update)');
select throws_ok(format($$update client_services.organizations set metadata = '{}' where id = %L$$, :'org'),
  '42501', null, 'metadata is not the members'' to change, as on the table');
select throws_ok(format($$update client_services.organizations set plan_type = 'pro' where id = %L$$, :'org'),
  '42501', null, 'nor the plan');
select throws_ok(format($$delete from client_services.organizations where id = %L$$, :'org'),
  '42501', null, 'nor may they delete it');

-- Accounts, as the back end.
select tests.act_as_service_for(:'olga');
select throws_ok(format($$insert into client_services.accounts (user_id, organization_id, role, permissions) values (%L, %L, 'member', array['read', 'delete'])$$,
                        :'mel', :'org'), '22023', 'client_services.accounts: role tenant_member does not grant ''delete''',
  'permissions beyond the role are refused (a member deletes nothing)');
select lives_ok(format($$insert into client_services.accounts (user_id, organization_id, role, permissions) values (%L, %L, 'member', array['read', 'write', 'usage.record'])$$,
                       :'mel', :'org'), 'the guide''s words and permission keys within the role are accepted');
select is((select role_key || '/' || member_type from tenancy.memberships where organization_id = :'org' and user_id = :'mel'),
  'tenant_member/member', 'member is tenant_member');
insert into client_services.accounts (user_id, organization_id, role) values (:'gus', :'org', 'viewer');
select is((select role_key || '/' || member_type from tenancy.memberships where organization_id = :'org' and user_id = :'gus'),
  'tenant_guest/guest', 'seed 001''s viewer is a guest');
select is((select role from client_services.accounts where organization_id = :'org' and user_id = :'gus'), 'guest',
  'and shows as the guide''s guest');
select throws_ok(format($$insert into client_services.accounts (user_id, organization_id, role) values (%L, %L, 'superuser')$$, :'ada', :'org'),
  '22023', null, 'an unknown role is refused');
select throws_ok(format($$insert into client_services.accounts (user_id, organization_id, role) values (%L, %L, 'platform_admin')$$, :'ada', :'org'),
  '22023', null, 'a platform role is not a tenant role');
select throws_ok(format($$insert into client_services.accounts (user_id, organization_id, role) values (%L, %L, 'member')$$, :'mel', :'org'),
  '23505', null, 'a member already is refused by the table');
insert into client_services.accounts (user_id, organization_id, role) values (:'ada', :'org', 'tenant_admin') returning id as ada_account \gset
select is(:'ada_account'::uuid, private.client_services_account_id(:'org', :'ada'), 'RETURNING id is the membership''s derived id');
select is((select role from client_services.accounts where id = :'ada_account'), 'admin', 'a full role key is accepted and shown short');
update client_services.accounts set role = 'guest' where organization_id = :'org' and user_id = :'ada';
select is((select role_key || '/' || member_type from tenancy.memberships where organization_id = :'org' and user_id = :'ada'),
  'tenant_guest/guest', 'the back end changes a role');
delete from client_services.accounts where organization_id = :'org' and user_id = :'ada';
select is((select count(*)::int from tenancy.memberships where organization_id = :'org' and user_id = :'ada'), 0,
  'the back end removes a membership');
set constraints tenancy.organizations_keep_an_owner immediate;
select throws_ok(format($$delete from client_services.accounts where organization_id = %L and user_id = %L$$, :'org', :'olga'),
  '23514', null, 'not the last owner (the table''s constraint trigger)');
set constraints tenancy.organizations_keep_an_owner deferred;

-- Members: what billing.view hides, and who may insert accounts.
select tests.act_as(:'gus');
select is((select plan_type from client_services.organizations where id = :'org'), null,
  'a guest (no billing.view) sees the organization, not its plan');
select tests.act_as(:'olga');
select throws_ok(format($$insert into client_services.accounts (user_id, organization_id, role) values (%L, %L, 'member')$$, :'ada', :'org'),
  '42501', 'client_services.accounts: members join an organization through an invitation', 'even an owner adds members by invitation');
select tests.act_as(:'mel');
update client_services.organizations set name = 'By Mel' where id = :'org';
select is((select name from tenancy.organizations where id = :'org'), 'CS Renamed',
  'a member without tenant.update renames nothing (0 rows, as on the table)');

-- Usage, as a member with usage.record.
insert into client_services.usage_logs (organization_id, service_name, usage_type, quantity, metadata)
values (:'org', 'api_call', 'request', 2, '{"idempotency_key": "k1", "a": 1}') returning id as first_event \gset
insert into client_services.usage_logs (organization_id, service_name, usage_type, quantity, metadata)
values (:'org', 'api_call', 'request', 2, '{"idempotency_key": "k1", "a": 1}') returning id as second_event \gset
select is(:'second_event'::uuid, :'first_event'::uuid, 'a replayed idempotency key returns the first event');
select is((select count(*)::int from usage.events where organization_id = :'org' and idempotency_key = 'k1'), 1, '... and records it once');
select is((select metadata from usage.events where organization_id = :'org' and idempotency_key = 'k1'), '{"a": 1, "usage_type": "request"}'::jsonb,
  'usage_type is kept in the event''s metadata, the key in its own column');
insert into client_services.usage_logs (organization_id, service_name, quantity) values (:'org', 'max_api_calls_per_month', 3)
returning service_name as by_feature \gset
select is(:'by_feature'::text, (select meter_key from catalog.features where key = 'max_api_calls_per_month'), 'a feature key is recorded under its meter');
select throws_ok(format($$insert into client_services.usage_logs (organization_id, service_name, quantity) values (%L, 'teleports', 1)$$, :'org'),
  '22023', null, 'an unknown meter is refused by record_usage');
insert into client_services.usage_logs (organization_id, service_name, quantity, created_at)
values (:'org', 'api_call', 1, date_trunc('hour', now()) - interval '1 hour') returning created_at as back_then \gset
select is(:'back_then'::timestamptz, date_trunc('hour', now()) - interval '1 hour', 'created_at is when the usage occurred');

-- Payments, as the back end and as platform staff.
select tests.act_as_service();
select throws_ok(format($$insert into client_services.billing_records (organization_id, amount, currency, payment_method, status) values (%L, 10, 'USD', 'stripe', 'paid')$$, :'org'),
  '22023', null, 'a payment without the provider''s payment id is refused');
select throws_ok(format($$insert into client_services.billing_records (organization_id, amount, currency, payment_method, status, metadata) values (%L, 0, 'USD', 'stripe', 'paid', '{"stripe_payment_id": "pi_0"}')$$, :'org'),
  '23514', null, 'a zero amount is refused by the table');
select throws_ok(format($$insert into client_services.billing_records (organization_id, amount, currency, payment_method, status, metadata) values (%L, 1e20, 'USD', 'stripe', 'paid', '{"stripe_payment_id": "pi_big"}')$$, :'org'),
  '22003', null, 'an amount beyond bigint minor units is out of range');
insert into client_services.billing_records (organization_id, amount, currency, payment_method, status, metadata)
values (:'org', 12.34, 'EUR', 'polar', 'paid', '{"polar_payment_id": "po_1", "reason": "topup"}');
select is((select provider || ':' || provider_payment_id || ':' || amount_minor from billing.one_off_payments where organization_id = :'org'),
  'polar:po_1:1234', 'the provider''s id is read from <payment_method>_payment_id');
select is((select array_agg(kind || ' ' || amount::text || ' ' || currency order by kind) from client_services.transactions where organization_id = :'org'),
  array['credit 12.34 EUR', 'payment 12.34 EUR'], 'a paid top-up lists its payment and the credit it posted');
select throws_ok(format($$insert into client_services.billing_records (organization_id, amount, currency, payment_method, status, metadata) values (%L, 20, 'EUR', 'polar', 'paid', '{"polar_payment_id": "po_1", "reason": "topup"}')$$, :'org'),
  '22023', null, 'the same provider payment with another amount is refused');
select tests.act_as(:'stan');
select lives_ok(format($$insert into client_services.billing_records (organization_id, amount, currency, payment_method, status, metadata) values (%L, 5, 'USD', 'stripe', 'pending', '{"stripe_payment_id": "pi_staff", "note": "manual"}')$$, :'org'),
  'platform staff with platform.billing.adjust record a payment');
reset role;
select is((select metadata from billing.one_off_payments where organization_id = :'org' and provider_payment_id = 'pi_staff'),
  '{"note": "manual", "stripe_payment_id": "pi_staff"}'::jsonb, '... with its metadata');

-- The back end changes the plan and the status through the view.
select tests.act_as_service();
update client_services.organizations set plan_type = 'business' where id = :'org';
select is((select plan_key from billing.subscriptions where organization_id = :'org' and status <> 'canceled'), 'business',
  'the back end upgrades through change_subscription_plan');
select throws_ok(format($$update client_services.organizations set plan_type = null where id = %L$$, :'org'),
  '22023', null, 'plan_type is not removed (cancel_subscription ends a subscription)');
update client_services.organizations set status = 'suspended' where id = :'org';
select is((select status from tenancy.organizations where id = :'org'), 'suspended', 'the back end suspends an organization');

-- Read-only columns and views, even for a role that bypasses privileges.
reset role;
select throws_ok(format($$update client_services.organizations set id = gen_random_uuid() where id = %L$$, :'org'),
  '0A000', null, 'an organization''s id is not written through the view');
select throws_ok(format($$update client_services.accounts set user_id = %L where organization_id = %L and user_id = %L$$, :'ada', :'org', :'mel'),
  '0A000', null, 'nor is a membership''s user');
select throws_ok($$delete from client_services.transactions$$, '0A000', null, 'transactions is read-only');

select * from finish();
rollback;
