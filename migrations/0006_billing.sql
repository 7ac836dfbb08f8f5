-- 0006 billing: billing calendar, payment customers, subscriptions and their
-- history, one-off payments, the credit ledger, the payment-event inbox,
-- invoices, connected accounts and platform revenue. Every table with an
-- organization_id is distributed by it under Citus; the inbox is platform data.
{% import 'sql/macros.sql' as m with context %}

create schema billing;
comment on schema billing is 'tenantdb billing: subscriptions, invoices, credits, payments and the payment-event inbox.';
revoke all on schema billing from public;
grant usage on schema billing to authenticated, service_role;

create table billing.settings (
  organization_id uuid primary key references tenancy.organizations (id) on delete cascade,
  time_zone text not null default 'UTC',
  anchor_day smallint not null default 1,
  updated_at timestamptz not null default now(),
  constraint settings_anchor_day_range check (anchor_day between 1 and 31),
  constraint settings_time_zone_known check ((timestamptz '2000-01-01 00:00+00' at time zone time_zone) is not null)
);
comment on table billing.settings is 'An organization''s billing calendar: periods start on anchor_day (the last day of shorter months) at midnight in time_zone. Without a row: the 1st, UTC. Written by the back end only, best at a period boundary: counters are keyed by period start.';
comment on column billing.settings.anchor_day is 'Day of month periods start on; 29-31 fall on the last day of shorter months.';
{{ m.table_grants('billing.settings', 'select') }}

create table billing.payment_customers (
  organization_id uuid not null references tenancy.organizations (id) on delete cascade,
  provider text not null,
  provider_customer_id text not null,
  created_at timestamptz not null default now(),
  primary key (organization_id, provider),
  constraint payment_customers_provider_format check (provider ~ '^[a-z][a-z0-9_]*$')
);
create index payment_customers_provider_customer on billing.payment_customers (provider, provider_customer_id);
comment on table billing.payment_customers is 'The organization''s customer id at each payment provider (stripe, polar, dodo, ...).';
{{ m.table_grants('billing.payment_customers', 'select') }}

create table billing.subscriptions (
  organization_id uuid not null references tenancy.organizations (id) on delete cascade,
  id uuid not null default gen_random_uuid(),
  plan_key text not null references catalog.plans (key) on update cascade,
  status text not null default 'active',
  seats integer not null default 1,
  provider text,
  provider_subscription_id text,
  current_period_start timestamptz not null,
  current_period_end timestamptz not null,
  trial_end timestamptz,
  pending_plan_key text references catalog.plans (key) on update cascade,
  cancel_at_period_end boolean not null default false,
  canceled_at timestamptz,
  last_event_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (organization_id, id),
  constraint subscriptions_status_known check (status in ('trialing', 'active', 'past_due', 'canceled', 'unpaid')),
  constraint subscriptions_seats_positive check (seats >= 1),
  constraint subscriptions_period_ordered check (current_period_end > current_period_start),
  constraint subscriptions_canceled_stamped check ((status = 'canceled') = (canceled_at is not null)),
  constraint subscriptions_trial_has_end check (status <> 'trialing' or trial_end is not null),
  constraint subscriptions_provider_pair check ((provider is null) = (provider_subscription_id is null))
);
create unique index subscriptions_one_live_per_org on billing.subscriptions (organization_id) where status <> 'canceled';
create index subscriptions_plan on billing.subscriptions (plan_key);
create index subscriptions_pending_plan on billing.subscriptions (pending_plan_key);
create index subscriptions_provider_ref on billing.subscriptions (provider, provider_subscription_id);
comment on table billing.subscriptions is 'An organization''s subscription to a plan. At most one live (not canceled) per organization. Status changes follow a state machine; plan and status changes are recorded in subscription_history by trigger.';
comment on column billing.subscriptions.pending_plan_key is 'A downgrade waiting for the end of the current period.';
comment on column billing.subscriptions.last_event_at is 'occurred_at of the newest provider event applied: older events never overwrite newer state.';
{{ m.table_grants('billing.subscriptions', 'select') }}

create table billing.subscription_history (
  organization_id uuid not null,
  id uuid not null default gen_random_uuid(),
  subscription_id uuid,
  old_plan_key text references catalog.plans (key) on update cascade,
  new_plan_key text references catalog.plans (key) on update cascade,
  old_status text,
  new_status text,
  change_type text not null,
  provider_event_id text,
  amount_paid_minor bigint,
  proration_credit_minor bigint,
  proration_charge_minor bigint,
  effective_date date not null default current_date,
  reason text,
  created_at timestamptz not null default clock_timestamp(),
  created_by uuid,
  reported boolean not null default false,
  primary key (organization_id, id),
  constraint subscription_history_organization_fk foreign key (organization_id)
    references tenancy.organizations (id) on delete cascade,
  constraint subscription_history_subscription_fk foreign key (organization_id, subscription_id)
    references billing.subscriptions (organization_id, id) on delete cascade,
  constraint subscription_history_change_type_known check (change_type in
    ('created', 'upgrade', 'downgrade', 'downgrade_scheduled', 'cancelled', 'reactivated',
     'trial_started', 'trial_ended', 'status_changed', 'renewed')),
  constraint subscription_history_proration_not_negative check (
    coalesce(proration_credit_minor, 0) >= 0 and coalesce(proration_charge_minor, 0) >= 0)
);
create index subscription_history_subscription on billing.subscription_history (organization_id, subscription_id);
create index subscription_history_old_plan on billing.subscription_history (old_plan_key);
create index subscription_history_new_plan on billing.subscription_history (new_plan_key);
create index subscription_history_effective on billing.subscription_history (organization_id, effective_date desc);
comment on table billing.subscription_history is 'Append-only record of every plan and status change (written by trigger) and of changes reported through record_subscription_change.';
comment on column billing.subscription_history.created_at is 'clock_timestamp(), not now(): two changes in one transaction keep their order (plan_at reads it).';
comment on column billing.subscription_history.reported is 'true for rows recorded through record_subscription_change (reports from outside), false for rows the database wrote on a change.';
comment on column billing.subscription_history.created_by is 'The acting user''s id; not a foreign key, so the history outlives the user.';
comment on column billing.subscription_history.proration_credit_minor is 'Upgrade: the unused part of the old plan credited to the ledger (rounded down).';
comment on column billing.subscription_history.proration_charge_minor is 'Upgrade: the new plan for the rest of the period, billed on the next invoice (rounded up).';
{{ m.table_grants('billing.subscription_history', 'select') }}

create table billing.one_off_payments (
  organization_id uuid not null references tenancy.organizations (id) on delete cascade,
  id uuid not null default gen_random_uuid(),
  provider text not null,
  provider_payment_id text not null,
  amount_minor bigint not null,
  currency char(3) not null,
  status text not null default 'pending',
  reason text not null,
  succeeded_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (organization_id, id),
  constraint one_off_payments_once_per_provider_payment unique (organization_id, provider, provider_payment_id),
  constraint one_off_payments_amount_positive check (amount_minor > 0),
  constraint one_off_payments_currency_iso4217 check (currency ~ '^[A-Z]{3}$'),
  constraint one_off_payments_status_known check (status in ('pending', 'succeeded', 'failed', 'refunded')),
  constraint one_off_payments_reason_known check (reason in ('topup', 'addon')),
  constraint one_off_payments_success_stamped check ((status in ('succeeded', 'refunded')) = (succeeded_at is not null))
);
comment on table billing.one_off_payments is 'Single purchases: credit top-ups and add-ons. A top-up that succeeds posts its credits once.';
{{ m.table_grants('billing.one_off_payments', 'select') }}

create table billing.credit_ledger (
  organization_id uuid not null references tenancy.organizations (id) on delete cascade,
  id uuid not null default gen_random_uuid(),
  amount_minor bigint not null,
  currency char(3) not null,
  source text not null,
  reason text not null,
  idempotency_key text not null,
  reference jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, id),
  constraint credit_ledger_idempotent unique (organization_id, idempotency_key),
  constraint credit_ledger_amount_not_zero check (amount_minor <> 0),
  constraint credit_ledger_currency_iso4217 check (currency ~ '^[A-Z]{3}$'),
  constraint credit_ledger_source_known check (source in ('topup', 'admin', 'promo', 'proration', 'invoice', 'refund'))
);
create index credit_ledger_balance on billing.credit_ledger (organization_id, currency) include (amount_minor);
comment on table billing.credit_ledger is 'Append-only credit wallet: + credits granted, - credits spent. Balance = sum per currency, never negative (billing.credit_balances).';
comment on column billing.credit_ledger.created_by is 'The acting user''s id; not a foreign key, so the ledger outlives the user.';
comment on column billing.credit_ledger.idempotency_key is 'Unique per organization: a replayed posting is recognised, never doubled.';
{{ m.table_grants('billing.credit_ledger', 'select') }}

create table billing.credit_balances (
  organization_id uuid not null references tenancy.organizations (id) on delete cascade,
  currency char(3) not null,
  balance_minor bigint not null default 0,
  primary key (organization_id, currency),
  constraint credit_ledger_balance_not_negative check (balance_minor >= 0)
);
comment on table billing.credit_balances is 'Running balance per organization and currency, kept by the ledger''s trigger in the same transaction; its CHECK is what refuses an overdraft, at every isolation level (a concurrent update waits, or fails to serialize). Always equal to the sum of credit_ledger.';
{{ m.table_grants('billing.credit_balances', 'select') }}

create table billing.payment_events (
  id uuid primary key default gen_random_uuid(),
  provider text not null,
  provider_event_id text not null,
  event_type text not null,
  payload jsonb not null,
  occurred_at timestamptz not null,
  received_at timestamptz not null default now(),
  constraint payment_events_once_per_provider_event unique (provider, provider_event_id),
  constraint payment_events_payload_is_object check (jsonb_typeof(payload) = 'object')
);
comment on table billing.payment_events is 'Inbox of payment-provider webhooks: stored first, exactly once per (provider, provider_event_id), never changed. Processing state lives in payment_event_processing.';
{{ m.table_grants('billing.payment_events', none) }}

create table billing.payment_event_processing (
  event_id uuid primary key references billing.payment_events (id) on delete cascade,
  status text not null default 'pending',
  attempts integer not null default 0,
  locked_until timestamptz,
  last_error text,
  processed_at timestamptz,
  updated_at timestamptz not null default now(),
  constraint payment_event_processing_status_known check (status in ('pending', 'processing', 'processed', 'failed', 'skipped')),
  constraint payment_event_processing_done_stamped check ((status in ('processed', 'skipped')) = (processed_at is not null))
);
create index payment_event_processing_claimable on billing.payment_event_processing (status, locked_until)
  where status in ('pending', 'processing', 'failed');
comment on table billing.payment_event_processing is 'Where each inbox event stands: pending, processing (claimed until locked_until), processed, failed (retried), skipped.';
{{ m.table_grants('billing.payment_event_processing', none) }}

create table billing.payment_event_attempts (
  event_id uuid not null references billing.payment_events (id) on delete cascade,
  attempt integer not null,
  worker text not null,
  started_at timestamptz not null default now(),
  outcome text not null,
  error text,
  primary key (event_id, attempt),
  constraint payment_event_attempts_outcome_known check (outcome in ('processed', 'failed', 'skipped'))
);
comment on table billing.payment_event_attempts is 'Append-only log of every processing attempt of an inbox event, with its error.';
{{ m.table_grants('billing.payment_event_attempts', none) }}

create table billing.invoices (
  organization_id uuid not null references tenancy.organizations (id) on delete cascade,
  id uuid not null default gen_random_uuid(),
  period_start date not null,
  period_end date not null,
  currency char(3) not null,
  status text not null default 'draft',
  total_minor bigint,
  provider_invoice_id text,
  finalized_at timestamptz,
  paid_at timestamptz,
  voided_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (organization_id, id),
  constraint invoices_one_per_period unique (organization_id, period_start),
  constraint invoices_currency_unique unique (organization_id, id, currency),
  constraint invoices_currency_iso4217 check (currency ~ '^[A-Z]{3}$'),
  constraint invoices_status_known check (status in ('draft', 'open', 'paid', 'void', 'uncollectible')),
  constraint invoices_period_ordered check (period_end > period_start),
  constraint invoices_total_when_final check (
    (finalized_at is null) = (total_minor is null)
    and (status <> 'draft' or finalized_at is null)
    and (status not in ('open', 'paid', 'uncollectible') or finalized_at is not null))
);
comment on table billing.invoices is 'The bill for one billing period: the sum of its lines (subscription + usage fees + prorations - credits). draft -> open -> paid | void | uncollectible; lines and amounts are frozen once open.';
comment on column billing.invoices.total_minor is 'Sum of the lines, stamped when the invoice is finalized (open).';
{{ m.table_grants('billing.invoices', 'select') }}

create table billing.invoice_lines (
  organization_id uuid not null,
  invoice_id uuid not null,
  line_no integer not null,
  kind text not null,
  description text not null,
  quantity bigint not null default 1,
  unit_amount_minor bigint not null,
  amount_minor bigint not null,
  currency char(3) not null,
  feature_key text,
  primary key (organization_id, invoice_id, line_no),
  constraint invoice_lines_currency_matches_invoice foreign key (organization_id, invoice_id, currency)
    references billing.invoices (organization_id, id, currency) on delete cascade,
  constraint invoice_lines_kind_known check (kind in ('subscription', 'usage', 'proration', 'credit', 'adjustment')),
  constraint invoice_lines_amount_is_product check (amount_minor = quantity * unit_amount_minor),
  constraint invoice_lines_credit_negative check ((kind = 'credit') = (amount_minor < 0) or (kind = 'adjustment'))
);
create index invoice_lines_invoice_currency on billing.invoice_lines (organization_id, invoice_id, currency);
comment on table billing.invoice_lines is 'Lines of an invoice, all in the invoice''s currency (invoice_lines_currency_matches_invoice).';
{{ m.table_grants('billing.invoice_lines', 'select') }}

create table billing.connected_accounts (
  organization_id uuid not null references tenancy.organizations (id) on delete cascade,
  provider text not null,
  provider_account_id text not null,
  application_fee_bps integer not null default 0,
  status text not null default 'pending',
  created_at timestamptz not null default now(),
  primary key (organization_id, provider),
  constraint connected_accounts_fee_range check (application_fee_bps between 0 and 10000),
  constraint connected_accounts_status_known check (status in ('pending', 'active', 'restricted', 'disabled'))
);
comment on table billing.connected_accounts is 'An organization''s connected payment account (Stripe Connect and the like) and the platform''s application fee in basis points.';
comment on column billing.connected_accounts.application_fee_bps is 'Platform fee in basis points of each payment (250 = 2.5%).';
{{ m.table_grants('billing.connected_accounts', 'select') }}

create table billing.platform_revenue (
  organization_id uuid not null references tenancy.organizations (id) on delete cascade,
  id uuid not null default gen_random_uuid(),
  provider text not null,
  source_payment_id text not null,
  gross_amount_minor bigint not null,
  application_fee_minor bigint not null,
  currency char(3) not null,
  occurred_at timestamptz not null,
  created_at timestamptz not null default now(),
  primary key (organization_id, id),
  constraint platform_revenue_once_per_payment unique (organization_id, provider, source_payment_id),
  constraint platform_revenue_amounts check (gross_amount_minor > 0 and application_fee_minor between 0 and gross_amount_minor),
  constraint platform_revenue_currency_iso4217 check (currency ~ '^[A-Z]{3}$')
);
create index platform_revenue_month on billing.platform_revenue (organization_id, occurred_at);
comment on table billing.platform_revenue is 'Append-only: each payment through a connected account and the platform''s application fee on it.';
{{ m.table_grants('billing.platform_revenue', 'select') }}
