-- billing and usage guards found by review: who may meter, what a trial
-- upgrade costs, refunds, cancellations, missing features, billing model.
begin;
\ir _helpers.psql
select plan(20);

select tests.user('gia@g.test') as gia \gset
select tests.user('guest@g.test') as guest \gset
select tests.personal_org(:'gia') as org \gset
insert into tenancy.memberships (organization_id, user_id, role_key, member_type) values (:'org', :'guest', 'tenant_guest', 'guest');

-- Metering needs usage.record: not a read-only guest, not a suspended organization.
select tests.act_as(:'guest');
select throws_ok(format($$select record_usage(%L, 'api_call', 1, 'g1')$$, :'org'), '42501', null, 'a guest cannot record usage');
reset role;
update tenancy.organizations set status = 'suspended' where id = :'org';
select tests.act_as(:'gia');
select throws_ok(format($$select record_usage(%L, 'api_call', 1, 'g2')$$, :'org'), '42501', null, 'a suspended organization records no usage');
reset role;
update tenancy.organizations set status = 'active' where id = :'org';
select tests.act_as(:'gia');
select throws_ok(format($$select record_usage(%L, 'api_call', 5000000000000, 'huge')$$, :'org'), '22023', null,
  'a single event above 10^12 units is refused');
-- A plan without the flags feature does not allow it.
reset role;
delete from catalog.plan_features where plan_key = 'free' and feature_key = 'features';
select tests.act_as(:'gia');
select is(check_feature_access(:'gia', 'features', :'org') -> 'allowed', 'false'::jsonb, 'flags missing from the plan are not allowed');
reset role;

-- An upgrade during a trial credits nothing and charges nothing.
update billing.subscriptions set status = 'canceled' where organization_id = :'org';
insert into billing.subscriptions (organization_id, plan_key, status, trial_end, current_period_start, current_period_end)
values (:'org', 'pro', 'trialing', now() + interval '7 days', now() - interval '1 day', now() + interval '29 days');
select is(change_subscription_plan(:'org', 'business') -> 'credit_minor', '0'::jsonb, 'no credit for an unpaid trial period');
select is(credit_balance(:'org'), 0::bigint, 'the ledger is untouched');

-- A refunded top-up takes back what is left of its credit.
select record_one_off_payment(:'org', 'stripe', 'pi_r', 3000, 'USD', 'topup', 'succeeded');
select post_credit(:'org', -1000, 'USD', 'admin', 'spend-r', 'Spent');
select record_one_off_payment(:'org', 'stripe', 'pi_r', 3000, 'USD', 'topup', 'refunded');
select is(credit_balance(:'org'), 0::bigint, 'the unspent 2000 of a refunded 3000 top-up are taken back');
select is((select (reference ->> 'already_spent_minor')::int from billing.credit_ledger where idempotency_key like 'topup-refund:%'), 1000,
  'the part already spent is on record');
select throws_ok(format($$select record_one_off_payment(%L, 'stripe', 'pi_r', 9999, 'USD', 'topup', 'refunded')$$, :'org'), '22023', null,
  'a payment reported again with another amount is refused');
select is((select sum(amount_minor)::bigint from billing.credit_ledger where organization_id = :'org'),
          (select balance_minor from billing.credit_balances where organization_id = :'org' and currency = 'USD'),
  'the running balance equals the sum of the ledger');

-- Invoices follow the history: an upgrade during a period, then cancelling.
select tests.user('hal@h.test') as hal \gset
select tests.personal_org(:'hal') as horg \gset
update billing.subscriptions set plan_key = 'pro', current_period_start = now() - interval '15 days',
       current_period_end = now() + interval '15 days' where organization_id = :'horg';
select change_subscription_plan(:'horg', 'business') as up \gset
select cancel_subscription(:'horg', false);
select (select end_date from private.billing_period(:'horg', now())) as next_start \gset
select generate_invoice(:'horg', :'next_start') as hinv \gset
select is((select array_agg(kind order by line_no) from billing.invoice_lines where invoice_id = :'hinv'), array['proration'],
  'after cancelling, the next invoice still bills the upgrade''s proration, and no plan');
select is((select amount_minor from billing.invoice_lines where invoice_id = :'hinv'), (:'up'::jsonb ->> 'charge_minor')::bigint,
  'for the amount the upgrade reported');
select throws_ok(format($$select generate_invoice(%L, (%L::date + 1))$$, :'horg', :'next_start'), '22023', null,
  'a day that does not start a period is refused');
select throws_ok(format($$select generate_invoice(%L, (select end_date from private.billing_period(%L, %L::date + interval '40 days')))$$,
  :'horg', :'horg', :'next_start'), 'P0002', null, 'a period with nothing to bill is refused');

-- Refusals of the invoice and subscription functions.
select throws_ok(format($$insert into billing.invoice_lines (organization_id, invoice_id, line_no, kind, description, unit_amount_minor, amount_minor, currency)
                          select organization_id, id, 99, 'adjustment', 'euro line', 5, 5, 'EUR' from billing.invoices where id = %L$$, :'hinv'),
  '23503', null, 'a line in another currency than its invoice is refused (invoice_lines_currency_matches_invoice)');
select is(finalize_invoice(:'horg', :'hinv'), (:'up'::jsonb ->> 'charge_minor')::bigint - (:'up'::jsonb ->> 'credit_minor')::bigint,
  'finalizing applies the upgrade''s credit to its charge');
select throws_ok(format($$select finalize_invoice(%L, %L)$$, :'horg', :'hinv'), '55000', null, 'an invoice is finalized once');
select throws_ok(format($$select set_invoice_status(%L, gen_random_uuid(), 'paid')$$, :'horg'), 'P0002', null, 'an unknown invoice is refused');
select throws_ok(format($$select cancel_subscription(%L)$$, :'horg'), 'P0002', null, 'cancelling without a live subscription is refused');
select tests.act_as(:'hal');
select throws_ok(format($$select generate_invoice(%L, %L)$$, :'horg', :'next_start'), '42501', null, 'a tenant owner cannot generate invoices');
reset role;

select * from finish();
rollback;
