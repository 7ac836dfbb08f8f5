-- 0020 settlement: what the payment provider's invoice webhooks change.
--   * billing.invoices records its payment attempts the way Stripe does: a
--     failed attempt leaves the invoice open and counts it
--     (failed_payment_count, last_payment_failed_at, last_payment_error);
--     what the provider collected and refunded (amount_paid_minor,
--     amount_refunded_minor); and last_event_at, the provider time of the
--     newest event that moved it, so an older event never undoes a newer one.
--   * billing.invoice_settlements: each provider event applied to an
--     invoice, once (a replayed event is recognised by its inbox id).
--   * billing.settings.dunning_max_failures: after how many failed attempts
--     on one invoice the subscription is canceled.
--   * billing.credit_ledger accepts source 'billing' (entries the billing
--     system makes from provider events: overpayments, refunds to credit).
{% import 'sql/macros.sql' as m with context %}

alter table billing.invoices
  add column failed_payment_count bigint not null default 0,
  add column last_payment_failed_at timestamptz,
  add column last_payment_error text constraint invoices_last_payment_error_length check (length(last_payment_error) <= 2000),
  add column amount_paid_minor bigint,
  add column amount_refunded_minor bigint not null default 0,
  add column last_event_at timestamptz;
comment on column billing.invoices.failed_payment_count is 'Failed payment attempts the provider reported (invoice.payment_failed, payment.failed), each attempt once: the provider''s attempt_count when it sends one, else distinct provider payments; the invoice stays open meanwhile. "Failed invoices": status = ''open'' and failed_payment_count > 0.';
comment on column billing.invoices.last_payment_failed_at is 'Provider time of the latest failed payment attempt.';
comment on column billing.invoices.last_payment_error is 'The provider''s message for the latest failed attempt, when it sent one.';
comment on column billing.invoices.amount_paid_minor is 'What the provider reported collecting when the invoice was paid (the total when it did not say). Above the total, the rest is credited to the ledger; below it, the provider covered the rest from its own customer balance (the invoice is paid all the same).';
comment on column billing.invoices.amount_refunded_minor is 'Refunded so far by provider events; never more than amount_paid_minor. A refund returns an overpayment first (taking its credit back), then the invoice''s payment; a refunded invoice stays paid.';
comment on column billing.invoices.last_event_at is 'occurred_at of the newest provider event that changed the invoice''s status: an older event never undoes it.';

create table billing.invoice_settlements (
  organization_id uuid not null,
  id uuid not null default gen_random_uuid(),
  invoice_id uuid not null,
  payment_event_id uuid not null references billing.payment_events (id) on delete cascade,
  kind text not null,
  provider_payment_id text,
  occurred_at timestamptz not null,
  amount_minor bigint,
  applied boolean not null,
  error text,
  created_at timestamptz not null default now(),
  primary key (organization_id, id),
  constraint invoice_settlements_invoice_fk foreign key (organization_id, invoice_id)
    references billing.invoices (organization_id, id) on delete cascade,
  -- organization_id too (the Citus shape: every unique key of a tenant
  -- table holds it); payment_event_id first, the lookup of an event.
  constraint invoice_settlements_once_per_event unique (payment_event_id, organization_id),
  constraint invoice_settlements_kind_known check (kind in ('paid', 'payment_failed', 'voided', 'refunded')),
  constraint invoice_settlements_kind_length check (length(kind) <= 200),
  constraint invoice_settlements_provider_payment_id_length check (length(provider_payment_id) <= 200),
  constraint invoice_settlements_amount_not_negative check (amount_minor >= 0),
  constraint invoice_settlements_error_length check (length(error) <= 2000)
);
create index invoice_settlements_invoice on billing.invoice_settlements (organization_id, invoice_id, occurred_at);
comment on table billing.invoice_settlements is 'Append-only: each provider event applied to an invoice (paid, payment_failed, voided, refunded), once per inbox event, with whether it changed the invoice (applied = false: older than its state, recorded only).';
comment on column billing.invoice_settlements.kind is 'What the event says happened to the invoice: paid, payment_failed, voided or refunded.';
comment on column billing.invoice_settlements.provider_payment_id is 'The provider''s payment the event names (provider_payment_id or payment_intent): two failure reports of one payment count as one attempt when the event has no attempt_count.';
comment on column billing.invoice_settlements.occurred_at is 'When the provider says it happened (the event''s own time): settlements apply in this order, an older one never undoes a newer state.';
comment on column billing.invoice_settlements.amount_minor is 'The amount paid or refunded, in minor units of the invoice''s currency (null for failures and voids).';
comment on column billing.invoice_settlements.applied is 'false when the event was older than the invoice''s state (or repeated a settled fact): recorded, nothing changed.';
{{ m.table_grants('billing.invoice_settlements', 'select') }}

alter table billing.settings
  add column dunning_max_failures bigint not null default 4,
  add constraint settings_dunning_max_failures_range check (dunning_max_failures between 1 and 100) not valid;
comment on column billing.settings.dunning_max_failures is 'Failed payment attempts on one invoice after which the subscription is canceled (without a settings row: 4, Stripe''s default retry count).';

-- Widened: every existing row passed the narrower check, so NOT VALID
-- (no scan of the ledger under its lock) loses nothing; new rows are checked.
alter table billing.credit_ledger
  drop constraint credit_ledger_source_known,
  add constraint credit_ledger_source_known
    check (source in ('topup', 'admin', 'promo', 'proration', 'invoice', 'refund', 'billing')) not valid;
