-- 0020 settlement: the payment provider's invoice events applied to our
-- invoices (paid, failed attempts, voided, refunded), with the ledger
-- entries they imply and the subscription's dunning state.
{% import 'sql/macros.sql' as m with context %}

{{ m.append_only('billing.invoice_settlements') }}

-- private.invoice_event_kind(event_type text) -> text
-- paid, payment_failed, voided or refunded for the event types that settle
-- an invoice; null for the others. Internal.
create or replace function private.invoice_event_kind(event_type text)
  returns text
  language sql
  immutable
  {{ m.pinned() }}
as $fn$
  select case
    when event_type in ('invoice.paid', 'invoice.payment_succeeded', 'payment.succeeded') then 'paid'
    when event_type in ('invoice.payment_failed', 'payment.failed') then 'payment_failed'
    when event_type = 'invoice.voided' then 'voided'
    when event_type in ('invoice.refunded', 'charge.refunded', 'payment.refunded') then 'refunded'
  end
$fn$;
comment on function private.invoice_event_kind is 'Internal: the settlement an event type means (paid, payment_failed, voided, refunded) or null.';
revoke all on function private.invoice_event_kind from public, anon, authenticated;

-- private.apply_invoice_event(e billing.payment_events) -> text
-- Settles one of our invoices from a provider event and returns processed
-- or skipped. The payload names the organization (organization_id) and the
-- invoice: the provider's id (provider_invoice_id, linked to our invoice
-- on first sight when our id comes with it) and/or ours (invoice_id or
-- metadata.invoice_id).
--   paid (invoice.paid, invoice.payment_succeeded, payment.succeeded):
--     open or uncollectible -> paid, paid_at = the event's time, the
--     provider's word: amount_paid_minor (default: the total) is recorded
--     as reported. Above the total, the rest is credited to the ledger
--     (source billing, key invoice-overpaid:<id>); below it, the provider
--     covered the rest from its own customer balance (Stripe's amount_paid)
--     and the invoice is paid all the same. A past_due or unpaid
--     subscription with no other failed open invoice -> active.
--   payment_failed (invoice.payment_failed, payment.failed): the invoice
--     stays open; last_payment_failed_at, last_payment_error (error or
--     failure_message) follow the newest report. Each attempt counts once,
--     though providers report it twice (Stripe: invoice.payment_failed and
--     payment_intent.payment_failed): failed_payment_count becomes the
--     greatest of itself and attempt_count when the payload has one; else,
--     with a provider_payment_id (or payment_intent), the number of
--     distinct payments that failed on the invoice; else it goes up by 1.
--     Only when it rises does the live subscription move: -> past_due, or
--     canceled once the invoice has failed
--     billing.settings.dunning_max_failures times (default 4).
--   voided (invoice.voided): draft, open or uncollectible -> void,
--     voided_at = the event's time, the credit it used given back
--     (set_invoice_status).
--   refunded (invoice.refunded, charge.refunded, payment.refunded):
--     amount_refunded_minor (or amount_minor) added to the paid invoice's
--     refunds (it stays paid), never more than amount_paid_minor in all.
--     A refund returns an overpayment first: the part of the refunds up to
--     the overpayment takes its credit back (a negative billing entry, key
--     invoice-overpayment-refunded:<event id>; 23514 when that credit was
--     spent meanwhile), the rest refunds the invoice. With "to_credit":
--     true the money stays with us as credit: what is not already the
--     overpayment's credit is credited (source billing, key
--     invoice-refund:<event id>).
-- Each event is applied once (billing.invoice_settlements): a replay is
-- skipped. An event older than the invoice's last status change
-- (last_event_at) never undoes it: it is recorded with applied = false and
-- skipped; so is a fact already settled (a second "paid"). Subscription
-- moves follow the subscription's last_event_at the same way.
-- Raises (the inbox records the attempt as failed and retries it): no
-- organization_id or invoice reference, a bad amount or attempt_count,
-- another currency, a refund above what was paid (22023); a refund of an
-- overpayment whose credit was spent (23514); no such invoice yet (P0002); a move the invoice cannot make —
-- paying or failing a draft, paying a newer-voided invoice, voiding a
-- paid one, refunding an unpaid one (55000). Internal: called by
-- apply_payment_event.
create or replace function private.apply_invoice_event(e billing.payment_events)
  returns text
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  kind text := private.invoice_event_kind(e.event_type);
  org uuid;
  our_id uuid;
  their_id text := nullif(e.payload ->> 'provider_invoice_id', '');
  inv billing.invoices;
  sub billing.subscriptions;
  amount bigint;
  newer boolean;
  max_failures bigint;
  failures bigint;
  attempts bigint;
  payment_id text := coalesce(nullif(e.payload ->> 'provider_payment_id', ''), nullif(e.payload ->> 'payment_intent', ''));
  overpaid bigint;
  overpayment_back bigint;
  message text := left(coalesce(e.payload ->> 'error', e.payload ->> 'failure_message'), 2000);
begin
  begin
    org := (e.payload ->> 'organization_id')::uuid;
    our_id := coalesce(e.payload ->> 'invoice_id', e.payload -> 'metadata' ->> 'invoice_id')::uuid;
  exception when invalid_text_representation then
    raise exception 'apply_invoice_event: organization_id and invoice_id must be uuids' using errcode = '22023';
  end;
  if kind is null or org is null or (our_id is null and their_id is null) then
    raise exception 'apply_invoice_event: % needs organization_id and provider_invoice_id or invoice_id (or metadata.invoice_id)', e.event_type
      using errcode = '22023';
  end if;
  if our_id is not null then
    select * into inv from billing.invoices i where i.organization_id = org and i.id = our_id for update;
  else
    select * into inv from billing.invoices i where i.organization_id = org and i.provider_invoice_id = their_id for update;
  end if;
  if not found then
    raise exception 'apply_invoice_event: organization % has no invoice %', org, coalesce(our_id::text, their_id)
      using errcode = 'P0002', hint = 'The event is retried: it is applied once the invoice exists.';
  end if;
  if their_id is not null and inv.provider_invoice_id is distinct from their_id then
    if inv.provider_invoice_id is not null then
      raise exception 'apply_invoice_event: invoice % is the provider''s %, the event names %', inv.id, inv.provider_invoice_id, their_id
        using errcode = '22023';
    end if;
    update billing.invoices i set provider_invoice_id = their_id where i.organization_id = org and i.id = inv.id;
  end if;
  if e.payload ? 'currency' and upper(e.payload ->> 'currency') <> inv.currency then
    raise exception 'apply_invoice_event: the event is in %, invoice % in %', upper(e.payload ->> 'currency'), inv.id, inv.currency
      using errcode = '22023';
  end if;
  if exists (select from billing.invoice_settlements x where x.organization_id = org and x.payment_event_id = e.id) then
    return 'skipped';  -- this very event was applied before
  end if;
  newer := inv.last_event_at is null or e.occurred_at >= inv.last_event_at;
  begin
    amount := coalesce(e.payload ->> 'amount_paid_minor', e.payload ->> 'amount_refunded_minor', e.payload ->> 'amount_minor')::bigint;
  exception when invalid_text_representation or numeric_value_out_of_range then
    raise exception 'apply_invoice_event: the amount must be an integer of minor units' using errcode = '22023';
  end;
  if amount < 0 then
    raise exception 'apply_invoice_event: a negative amount (%)', amount using errcode = '22023';
  end if;
  if kind = 'payment_failed' then
    begin
      attempts := (e.payload ->> 'attempt_count')::bigint;
    exception when invalid_text_representation or numeric_value_out_of_range then
      attempts := 0;
    end;
  end if;
  if attempts < 1 then
    raise exception 'apply_invoice_event: attempt_count must be a positive integer (%)', e.payload ->> 'attempt_count'
      using errcode = '22023';
  end if;

  if kind = 'paid' then
    if inv.status = 'draft' or (inv.status = 'void' and newer) then
      raise exception 'apply_invoice_event: invoice % is % and cannot be paid', inv.id, inv.status using errcode = '55000';
    end if;
    if inv.status not in ('open', 'uncollectible') then
      insert into billing.invoice_settlements (organization_id, invoice_id, payment_event_id, kind, occurred_at, amount_minor, applied)
      values (org, inv.id, e.id, kind, e.occurred_at, amount, false);
      return 'skipped';
    end if;
    amount := coalesce(amount, inv.total_minor);
    update billing.invoices i
       set status = 'paid', paid_at = e.occurred_at, amount_paid_minor = amount,
           last_event_at = greatest(i.last_event_at, e.occurred_at)
     where i.organization_id = org and i.id = inv.id;
    if amount > inv.total_minor then
      perform private.ledger_append(org, amount - inv.total_minor, inv.currency, 'billing', 'invoice-overpaid:' || inv.id,
        format('Overpayment of the invoice for %s', inv.period_start), jsonb_build_object('invoice_id', inv.id, 'event_id', e.id));
    end if;
    select * into sub from billing.subscriptions s
     where s.organization_id = org and s.status in ('past_due', 'unpaid') for update;
    if found and (sub.last_event_at is null or e.occurred_at >= sub.last_event_at)
       and not exists (select from billing.invoices i where i.organization_id = org and i.id <> inv.id
                                                        and i.status = 'open' and i.failed_payment_count > 0) then
      perform set_config('tenantdb.change_event', e.provider_event_id, true),
              set_config('tenantdb.change_reason', 'invoice paid', true);
      update billing.subscriptions s set status = 'active', last_event_at = e.occurred_at
       where s.organization_id = org and s.id = sub.id;
      perform set_config('tenantdb.change_event', '', true), set_config('tenantdb.change_reason', '', true);
    end if;

  elsif kind = 'payment_failed' then
    if inv.status = 'draft' then
      raise exception 'apply_invoice_event: invoice % is a draft: nothing was charged', inv.id using errcode = '55000';
    end if;
    if inv.status not in ('open', 'uncollectible') then
      insert into billing.invoice_settlements (organization_id, invoice_id, payment_event_id, kind, provider_payment_id, occurred_at,
                                               amount_minor, applied, error)
      values (org, inv.id, e.id, kind, payment_id, e.occurred_at, amount, false, message);
      return 'skipped';
    end if;
    if attempts is not null then
      failures := greatest(inv.failed_payment_count, attempts);
    elsif payment_id is not null then
      select greatest(inv.failed_payment_count, count(distinct f.payment_id)) into failures
        from (select x.provider_payment_id from billing.invoice_settlements x
               where x.organization_id = org and x.invoice_id = inv.id and x.kind = 'payment_failed'
              union all select payment_id) f(payment_id)
       where f.payment_id is not null;
    else
      failures := inv.failed_payment_count + 1;
    end if;
    update billing.invoices i
       set failed_payment_count = failures,
           last_payment_failed_at = greatest(i.last_payment_failed_at, e.occurred_at),
           last_payment_error = case when i.last_payment_failed_at is null or e.occurred_at >= i.last_payment_failed_at
                                     then message else i.last_payment_error end
     where i.organization_id = org and i.id = inv.id;
    select coalesce((select st.dunning_max_failures from billing.settings st where st.organization_id = org), 4) into max_failures;
    select * into sub from billing.subscriptions s where s.organization_id = org and s.status <> 'canceled' for update;
    if found and failures > inv.failed_payment_count then  -- a new attempt, not another report of a counted one
      perform set_config('tenantdb.change_event', e.provider_event_id, true);
      if failures >= max_failures then
        perform set_config('tenantdb.change_reason', format('payment failed %s times', failures), true);
        update billing.subscriptions s set status = 'canceled', canceled_at = e.occurred_at,
                                           last_event_at = greatest(s.last_event_at, e.occurred_at)
         where s.organization_id = org and s.id = sub.id;
      elsif sub.status in ('active', 'trialing') and (sub.last_event_at is null or e.occurred_at >= sub.last_event_at) then
        perform set_config('tenantdb.change_reason', 'payment failed', true);
        update billing.subscriptions s set status = 'past_due', last_event_at = e.occurred_at
         where s.organization_id = org and s.id = sub.id;
      end if;
      perform set_config('tenantdb.change_event', '', true), set_config('tenantdb.change_reason', '', true);
    end if;

  elsif kind = 'voided' then
    if inv.status = 'void' or (inv.status = 'paid' and not newer) then
      insert into billing.invoice_settlements (organization_id, invoice_id, payment_event_id, kind, occurred_at, applied)
      values (org, inv.id, e.id, kind, e.occurred_at, false);
      return 'skipped';
    end if;
    if inv.status = 'paid' then
      raise exception 'apply_invoice_event: invoice % is paid and cannot be voided (refund it)', inv.id using errcode = '55000';
    end if;
    perform private.set_invoice_status(org, inv.id, 'void');
    update billing.invoices i set voided_at = e.occurred_at, last_event_at = greatest(i.last_event_at, e.occurred_at)
     where i.organization_id = org and i.id = inv.id;

  else  -- refunded
    if inv.status <> 'paid' then
      raise exception 'apply_invoice_event: invoice % is %: only a paid invoice is refunded', inv.id, inv.status
        using errcode = '55000', hint = 'A refund that arrives before the payment is retried after it.';
    end if;
    if amount is null or amount = 0 then
      raise exception 'apply_invoice_event: a refund needs amount_refunded_minor (or amount_minor) > 0' using errcode = '22023';
    end if;
    if inv.amount_refunded_minor + amount > coalesce(inv.amount_paid_minor, inv.total_minor) then
      raise exception 'apply_invoice_event: refunds of invoice % would exceed the % paid', inv.id, coalesce(inv.amount_paid_minor, inv.total_minor)
        using errcode = '22023';
    end if;
    -- The overpayment (credited when paid) is what a refund returns first.
    overpaid := greatest(coalesce(inv.amount_paid_minor, inv.total_minor) - inv.total_minor, 0);
    overpayment_back := least(inv.amount_refunded_minor + amount, overpaid) - least(inv.amount_refunded_minor, overpaid);
    update billing.invoices i set amount_refunded_minor = i.amount_refunded_minor + amount
     where i.organization_id = org and i.id = inv.id;
    if coalesce((e.payload ->> 'to_credit')::boolean, false) then
      if amount > overpayment_back then  -- the overpayment's part is credit already
        perform private.ledger_append(org, amount - overpayment_back, inv.currency, 'billing', 'invoice-refund:' || e.id,
          format('Refund of the invoice for %s as credit', inv.period_start), jsonb_build_object('invoice_id', inv.id, 'event_id', e.id));
      end if;
    elsif overpayment_back > 0 then
      if private.ledger_balance(org, inv.currency) < overpayment_back then
        raise exception 'apply_invoice_event: the refund returns % of invoice %''s overpayment, but only % of its credit is left',
          overpayment_back, inv.id, private.ledger_balance(org, inv.currency)
          using errcode = '23514', hint = 'The credit was spent and the money refunded too: settle the difference by hand (post_credit), then the event is retried.';
      end if;
      perform private.ledger_append(org, -overpayment_back, inv.currency, 'billing', 'invoice-overpayment-refunded:' || e.id,
        format('Overpayment of the invoice for %s refunded', inv.period_start), jsonb_build_object('invoice_id', inv.id, 'event_id', e.id));
    end if;
  end if;
  insert into billing.invoice_settlements (organization_id, invoice_id, payment_event_id, kind, provider_payment_id, occurred_at,
                                           amount_minor, applied, error)
  values (org, inv.id, e.id, kind, payment_id, e.occurred_at, amount, true, case when kind = 'payment_failed' then message end);
  return 'processed';
end
$fn$;
comment on function private.apply_invoice_event is 'Internal: settles an invoice from a provider event (paid, failed attempt, voided, refunded) once per event, with ledger entries and dunning.';
revoke all on function private.apply_invoice_event from public, anon, authenticated;
