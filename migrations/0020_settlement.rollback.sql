-- Rollback of 0020 settlement. Ledger entries with source 'billing' must
-- go first (the narrower check is validated on re-creation); the invoice
-- columns and the per-event record of settlements are dropped.
-- tenantdb: destructive
alter table billing.credit_ledger drop constraint credit_ledger_source_known;
alter table billing.credit_ledger
  add constraint credit_ledger_source_known check (source in ('topup', 'admin', 'promo', 'proration', 'invoice', 'refund'));
alter table billing.settings drop constraint settings_dunning_max_failures_range, drop column dunning_max_failures;
drop table billing.invoice_settlements;
alter table billing.invoices
  drop column failed_payment_count, drop column last_payment_failed_at, drop column last_payment_error,
  drop column amount_paid_minor, drop column amount_refunded_minor, drop column last_event_at;
