-- billing: subscriptions, proration, credits, payments, inbox, invoices,
-- platform revenue.
begin;
\ir _helpers.psql
select plan(47);

select tests.user('bea@b.test') as bea \gset
select tests.user('mem@b.test') as mem \gset
select tests.personal_org(:'bea') as org \gset
insert into tenancy.memberships (organization_id, user_id, role_key) values (:'org', :'mem', 'tenant_member');
select id as sub from billing.subscriptions where organization_id = :'org' \gset

-- Subscriptions: one live per organization, a state machine, history.
select throws_ok(format($$insert into billing.subscriptions (organization_id, plan_key, current_period_start, current_period_end)
                          values (%L, 'pro', now(), now() + interval '1 month')$$, :'org'), '23505', null,
  'a second live subscription is refused (subscriptions_one_live_per_org)');
select throws_ok(format($$update billing.subscriptions set status = 'trialing' where id = %L$$, :'sub'), '23514',
  format('subscription %s cannot go from active to trialing', :'sub'), 'an illegal status move is refused');
select lives_ok(format($$update billing.subscriptions set status = 'past_due' where id = %L$$, :'sub'), 'active -> past_due');
select lives_ok(format($$update billing.subscriptions set status = 'active' where id = %L$$, :'sub'), 'past_due -> active');
select is((select array_agg(change_type order by created_at, change_type) from billing.subscription_history where subscription_id = :'sub'),
  array['created', 'status_changed', 'reactivated'], 'every change is in the history, in order, written by the database');
select throws_ok(format($$update billing.subscription_history set reason = 'x' where subscription_id = %L$$, :'sub'), '55000', null,
  'history is append-only, also for the table owner');

-- Upgrade mid-period: unused old plan credited (down), new plan charged (up).
update billing.subscriptions set plan_key = 'pro', current_period_start = now() - interval '10 days',
       current_period_end = now() + interval '20 days' where id = :'sub';
select change_subscription_plan(:'org', 'business') as up \gset
select is((:'up'::jsonb ->> 'credit_minor')::bigint, floor(2000 * 20 / 30.0)::bigint, 'two thirds of Pro (2000) are credited, rounded down');
select is((:'up'::jsonb ->> 'charge_minor')::bigint, ceil(10000 * 20 / 30.0)::bigint, 'two thirds of Business (10000) are charged, rounded up');
select is(credit_balance(:'org'), floor(2000 * 20 / 30.0)::bigint, 'the credit is in the ledger');
select is((select plan_key from billing.subscriptions where id = :'sub'), 'business', 'the upgrade takes effect now');
select change_subscription_plan(:'org', 'pro') as down \gset
select is(:'down'::jsonb ->> 'change', 'downgrade', 'a lower plan is a downgrade');
select is((select plan_key || '/' || pending_plan_key from billing.subscriptions where id = :'sub'), 'business/pro',
  'the downgrade waits for the period end');
select throws_ok(format($$select change_subscription_plan(%L, 'business')$$, :'org'), '22023', null, 'changing to the current plan is refused');
select throws_ok(format($$select change_subscription_plan(%L, 'gold')$$, :'org'), 'P0002', null, 'an unknown plan is refused');
select tests.act_as(:'bea');
select throws_ok(format($$select change_subscription_plan(%L, 'enterprise')$$, :'org'), '42501', null,
  'even the owner cannot change the plan directly: it goes through the payment provider');
reset role;
update billing.subscriptions set current_period_start = now() - interval '31 days', current_period_end = now() - interval '1 day' where id = :'sub';
select is(renew_subscriptions(now()), 1, 'renewal moves the ended subscription');
select is((select plan_key from billing.subscriptions where id = :'sub'), 'pro', 'the scheduled downgrade applied at the period end');
select ok((select current_period_end > now() from billing.subscriptions where id = :'sub'), 'a new period started');

-- record_subscription_change keeps seed 003's signature.
select lives_ok(format($$select record_subscription_change(%L, (select id from catalog.plans where key = 'pro'),
  (select id from catalog.plans where key = 'business'), 'upgrade', 'evt_1', 299.00, null)$$, :'org'), 'recording a reported change');
select is((select amount_paid_minor from billing.subscription_history where provider_event_id = 'evt_1'), 29900::bigint,
  'the amount paid is stored in minor units');
select throws_ok(format($$select record_subscription_change(%L, null, null, 'teleported')$$, :'org'), '22023', null,
  'an unknown change type is refused');
select tests.act_as(:'bea');
select throws_ok(format($$select record_subscription_change(%L, null, null, 'upgrade')$$, :'org'), '42501', null,
  'a tenant owner cannot write history directly');
reset role;

-- Credits: idempotent, never negative, append-only.
select is((select duplicate from post_credit(:'org', 500, 'USD', 'promo', 'promo-1', 'Welcome')), false, 'a credit posts');
select is((select duplicate from post_credit(:'org', 500, 'USD', 'promo', 'promo-1', 'Welcome')), true, 'its replay is recognised');
select throws_ok(format($$select post_credit(%L, 700, 'USD', 'promo', 'promo-1', 'Welcome')$$, :'org'), '22023', null,
  'a key reused for another amount is refused');
select throws_ok(format($$select post_credit(%L, -1000000, 'USD', 'admin', 'spend-big', 'Spend')$$, :'org'), '23514', null,
  'overspending is refused');
select throws_ok(format($$insert into billing.credit_ledger (organization_id, amount_minor, currency, source, reason, idempotency_key)
                          values (%L, -1000000, 'USD', 'admin', 'direct', 'direct-1')$$, :'org'), '23514', null,
  'overspending is refused on every insert path');
select throws_ok(format($$update billing.credit_ledger set amount_minor = 1 where organization_id = %L$$, :'org'), '55000', null,
  'the ledger refuses UPDATE, also for the owner');
select throws_ok(format($$delete from billing.credit_ledger where organization_id = %L$$, :'org'), '55000', null,
  'the ledger refuses DELETE, also for the owner');
select tests.act_as(:'bea');
select throws_ok(format($$select post_credit(%L, 100, 'USD', 'promo', 'self-gift', 'gift')$$, :'org'), '42501', null,
  'a tenant owner cannot post credits');
reset role;

-- One-off top-up: credits posted exactly once.
select credit_balance(:'org') as before_topup \gset
select record_one_off_payment(:'org', 'stripe', 'pi_1', 5000, 'USD', 'topup', 'succeeded') as pay \gset
select is(record_one_off_payment(:'org', 'stripe', 'pi_1', 5000, 'USD', 'topup', 'succeeded'), :'pay'::uuid, 'a repeated report is the same payment');
select is(credit_balance(:'org'), (:before_topup + 5000)::bigint, 'the top-up was credited once');
select throws_ok(format($$update billing.one_off_payments set status = 'pending' where id = %L$$, :'pay'), '23514', null,
  'a succeeded payment cannot go back to pending');

-- Inbox: stored once, applied in provider order.
select is((select duplicate from ingest_payment_event('stripe', 'evt_9', 'subscription.updated',
  jsonb_build_object('organization_id', :'org', 'status', 'unpaid'), now() + interval '2 minutes')), false, 'a new event is stored');
select is((select duplicate from ingest_payment_event('stripe', 'evt_9', 'subscription.updated', '{}', now())), true, 'a redelivery is a duplicate');
select ingest_payment_event('stripe', 'evt_8', 'subscription.updated',
  jsonb_build_object('organization_id', :'org', 'status', 'past_due'), now() + interval '1 minute');
select is((select array_agg(outcome) from process_payment_events('w1')), array['processed', 'processed'],
  'both newer events are applied');
select is((select status from billing.subscriptions where id = :'sub'), 'unpaid', 'applied in provider order: past_due, then unpaid');
select ingest_payment_event('stripe', 'evt_7', 'subscription.updated', jsonb_build_object('organization_id', :'org', 'status', 'active'),
  now() - interval '2 hours');
select is((select outcome from process_payment_events('w1')), 'skipped',
  'an event older than the applied state (here: older than the local plan change) is skipped');
select throws_ok($$select ingest_payment_event('stripe', '', 'x', '{}', now())$$, '22023', null, 'an event without an id is refused');

-- Invoice: seed 002's worked example, 2000 + 2000 - 1000 = 3000.
select tests.user('inv@i.test') as payer \gset
select tests.personal_org(:'payer') as porg \gset
update billing.subscriptions set plan_key = 'pro' where organization_id = :'porg';
select record_usage(:'porg', 'api_call', 102000, 'calls');
select post_credit(:'porg', 1000, 'USD', 'promo', 'p', 'Promo');
-- Billed in advance for the plan, in arrears for usage: the invoice of the
-- next period carries this period's overage.
select (select end_date from private.billing_period(:'porg', now())) as ps \gset
select generate_invoice(:'porg', :'ps') as invoice \gset
select is(generate_invoice(:'porg', :'ps'), :'invoice'::uuid, 'generating the period again returns the same invoice');
select is(finalize_invoice(:'porg', :'invoice'), 3000::bigint, 'subscription 2000 + usage 2000 - credits 1000 = 3000');
select is((select array_agg(kind || ':' || amount_minor order by line_no) from billing.invoice_lines where invoice_id = :'invoice'),
  array['subscription:2000', 'usage:2000', 'credit:-1000'], 'the invoice lines');
select throws_ok(format($$insert into billing.invoice_lines (organization_id, invoice_id, line_no, kind, description, unit_amount_minor, amount_minor, currency)
                          values (%L, %L, 9, 'adjustment', 'late', 5, 5, 'USD')$$, :'porg', :'invoice'), '55000', null,
  'a finalized invoice takes no new line');
select throws_ok(format($$update billing.invoices set total_minor = 1 where id = %L$$, :'invoice'), '55000', null,
  'a finalized total cannot be edited');
select throws_ok(format($$update billing.invoices set status = 'draft' where id = %L$$, :'invoice'), '23514', null,
  'an open invoice cannot go back to draft');
select lives_ok(format($$select set_invoice_status(%L, %L, 'void')$$, :'porg', :'invoice'), 'voiding an open invoice');
select is(credit_balance(:'porg'), 1000::bigint, 'voiding gives the applied credit back');

select * from finish();
rollback;
