-- Invoices: subscription + usage fees + prorations - credits (seed 002).
{% import 'sql/macros.sql' as m with context %}

-- private.invoices_lifecycle() -> trigger
-- BEFORE UPDATE OR DELETE on billing.invoices. Status moves:
--   draft -> open | void;  open -> paid | void | uncollectible;
--   uncollectible -> paid | void   (23514, invoices_status_transition)
-- Once out of draft an invoice is frozen: only its status, the time stamps
-- of that move and provider_invoice_id change, and it is never deleted
-- (55000, invoices_finalized_immutable).
create or replace function private.invoices_lifecycle()
  returns trigger
  language plpgsql
  {{ m.pinned() }}
as $fn$
begin
  if tg_op = 'DELETE' then
    if old.status <> 'draft' then
      raise exception 'invoice % is % and cannot be deleted', old.id, old.status
        using errcode = '55000', constraint = 'invoices_finalized_immutable';
    end if;
    return old;
  end if;
  if new.status is distinct from old.status
     and not (old.status, new.status) in (('draft', 'open'), ('draft', 'void'), ('open', 'paid'), ('open', 'void'),
                                          ('open', 'uncollectible'), ('uncollectible', 'paid'), ('uncollectible', 'void')) then
    raise exception 'invoice % cannot go from % to %', old.id, old.status, new.status
      using errcode = '23514', constraint = 'invoices_status_transition';
  end if;
  if old.status <> 'draft'
     and (new.organization_id, new.id, new.period_start, new.period_end, new.currency, new.total_minor, new.finalized_at, new.created_at)
         is distinct from (old.organization_id, old.id, old.period_start, old.period_end, old.currency, old.total_minor, old.finalized_at, old.created_at) then
    raise exception 'invoice % is % and its amounts and period are frozen', old.id, old.status
      using errcode = '55000', constraint = 'invoices_finalized_immutable';
  end if;
  new.paid_at := case when new.status = 'paid' then coalesce(new.paid_at, now()) end;
  new.voided_at := case when new.status = 'void' then coalesce(new.voided_at, now()) end;
  return new;
end
$fn$;
comment on function private.invoices_lifecycle is 'Trigger: invoice state machine; finalized invoices are frozen.';
{{ m.row_trigger('billing.invoices', 'invoices_lifecycle', 'before update or delete', 'private.invoices_lifecycle') }}

-- private.invoice_lines_frozen() -> trigger
-- BEFORE INSERT, UPDATE or DELETE on billing.invoice_lines: refuses any
-- change to the lines of an invoice that is no longer a draft (55000).
create or replace function private.invoice_lines_frozen()
  returns trigger
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  line billing.invoice_lines := case when tg_op = 'DELETE' then old else new end;
begin
  if exists (select from billing.invoices i
              where i.organization_id = line.organization_id and i.id = line.invoice_id and i.status <> 'draft') then
    raise exception 'invoice % is finalized: its lines cannot change', line.invoice_id
      using errcode = '55000', constraint = 'invoices_finalized_immutable';
  end if;
  return case when tg_op = 'DELETE' then old else new end;
end
$fn$;
comment on function private.invoice_lines_frozen is 'Trigger: the lines of a finalized invoice never change (55000).';
{{ m.row_trigger('billing.invoice_lines', 'invoice_lines_frozen', 'before insert or update or delete', 'private.invoice_lines_frozen') }}

-- private.generate_invoice(org uuid, period_start date) -> uuid
-- The draft invoice of the billing period P starting on period_start,
-- billed in advance for the plan and in arrears for usage:
--   * the price of the plan in force when P starts (or, for a subscription
--     that started during P, its first plan),
--   * the overage fees of the period before P, summarized now with the
--     plan in force at its end,
--   * the proration charges of upgrades made during the period before P.
-- Returns the invoice id; an invoice that exists for P is returned as is,
-- also when generated concurrently. Credits are applied by
-- finalize_invoice. Run renew_subscriptions first, so a downgrade due at
-- P's start is in the history. Refuses: not trusted and no
-- platform.billing.adjust (42501); a date that does not start a billing
-- period (22023); nothing to bill, no subscription in P or before (P0002);
-- fees in another currency than the plan's (22023).
create or replace function private.generate_invoice(org uuid, period_start date)
  returns uuid
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  period record;
  prev record;
  plan catalog.plans;
  prev_plan catalog.plans;
  inv_currency char(3);
  inv uuid;
  line int := 0;
  r record;
begin
  perform private.require_platform('platform.billing.adjust');
  select * into period from private.billing_period(org, period_start::timestamp at time zone 'UTC' + interval '12 hours');
  if period_start is null or period.start_date <> period_start then
    raise exception 'generate_invoice: % does not start a billing period of organization % (that period starts on %)',
      period_start, org, period.start_date using errcode = '22023';
  end if;
  perform pg_advisory_xact_lock(hashtextextended('tenantdb.invoice:' || org::text || ':' || period_start::text, 0));
  select i.id into inv from billing.invoices i where i.organization_id = org and i.period_start = generate_invoice.period_start;
  if found then
    return inv;
  end if;
  select * into prev from private.billing_period(org, period.period_start - interval '1 microsecond');
  plan := private.plan_at(org, period.period_start);
  if plan.key is null then
    select p.* into plan
      from billing.subscription_history h join catalog.plans p on p.key = h.new_plan_key
     where h.organization_id = org and not h.reported and h.change_type in ('created', 'trial_started')
       and h.created_at >= period.period_start and h.created_at < period.period_end
     order by h.created_at limit 1;
  end if;
  prev_plan := private.plan_for_period(org, prev.period_start, prev.period_end);
  if plan.key is null and prev_plan.key is null then
    raise exception 'generate_invoice: organization % has nothing to bill for the period starting %', org, period_start
      using errcode = 'P0002';
  end if;
  inv_currency := coalesce(plan.currency, prev_plan.currency);
  if prev_plan.key is not null then
    perform private.summarize_period(org, prev.start_date);
    if exists (select from usage.overage_fees f where f.organization_id = org and f.period_start = prev.start_date
                 and f.currency <> inv_currency) then
      raise exception 'generate_invoice: overage fees of % are not in the invoice currency %', prev.start_date, inv_currency
        using errcode = '22023';
    end if;
  end if;
  insert into billing.invoices (organization_id, period_start, period_end, currency)
  values (org, period.start_date, period.end_date, inv_currency)
  returning id into inv;
  if plan.key is not null then
    line := line + 1;
    insert into billing.invoice_lines (organization_id, invoice_id, line_no, kind, description, quantity, unit_amount_minor, amount_minor, currency)
    values (org, inv, line, 'subscription', format('%s plan, %s to %s', plan.name, period.start_date, period.end_date - 1),
            1, plan.price_minor, plan.price_minor, inv_currency);
  end if;
  for r in select f.feature_key, f.units_over, f.unit_price_minor, f.amount_minor
             from usage.overage_fees f
            where f.organization_id = org and f.period_start = prev.start_date
            order by f.feature_key loop
    line := line + 1;
    insert into billing.invoice_lines (organization_id, invoice_id, line_no, kind, description, quantity, unit_amount_minor,
                                       amount_minor, currency, feature_key)
    values (org, inv, line, 'usage', format('%s over the included units, %s to %s', r.feature_key, prev.start_date, prev.end_date - 1),
            r.units_over, r.unit_price_minor, r.amount_minor, inv_currency, r.feature_key);
  end loop;
  for r in select h.proration_charge_minor, h.old_plan_key, h.new_plan_key
             from billing.subscription_history h
            where h.organization_id = org and h.change_type = 'upgrade' and h.proration_charge_minor > 0
              and h.created_at >= prev.period_start and h.created_at < period.period_start
            order by h.created_at loop
    line := line + 1;
    insert into billing.invoice_lines (organization_id, invoice_id, line_no, kind, description, quantity, unit_amount_minor, amount_minor, currency)
    values (org, inv, line, 'proration', format('Upgrade from %s to %s, rest of the period', r.old_plan_key, r.new_plan_key),
            1, r.proration_charge_minor, r.proration_charge_minor, inv_currency);
  end loop;
  return inv;
end
$fn$;
comment on function private.generate_invoice is 'Definer twin of generate_invoice.';
{{ m.private_grants('generate_invoice') }}
{{ m.api_function('generate_invoice', 'p_organization_id uuid, p_period_start date', 'uuid', 'p_organization_id, p_period_start',
   'Draft invoice of a billing period: the plan in advance, the previous period\'s overage fees and upgrade prorations; idempotent per period. Needs service_role or platform.billing.adjust (42501); not a period start or currency mismatch: 22023; nothing to bill: P0002.') }}

-- private.finalize_invoice(org uuid, invoice_id uuid) -> bigint
-- Applies the organization's credit (up to the subtotal) as a credit line
-- and ledger entry (key invoice:<id>), stamps the total (the sum of the
-- lines), opens the invoice and returns the total. Refuses: not trusted and
-- no platform.billing.adjust (42501); unknown invoice (P0002); not a draft
-- (55000).
create or replace function private.finalize_invoice(org uuid, invoice_id uuid)
  returns bigint
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  inv billing.invoices;
  subtotal bigint;
  credit bigint;
  total bigint;
begin
  perform private.require_platform('platform.billing.adjust');
  select * into inv from billing.invoices i where i.organization_id = org and i.id = finalize_invoice.invoice_id for update;
  if not found then
    raise exception 'finalize_invoice: no invoice % in organization %', invoice_id, org using errcode = 'P0002';
  end if;
  if inv.status <> 'draft' then
    raise exception 'finalize_invoice: invoice % is already %', invoice_id, inv.status using errcode = '55000';
  end if;
  select coalesce(sum(l.amount_minor), 0) into subtotal from billing.invoice_lines l
   where l.organization_id = org and l.invoice_id = inv.id;
  credit := least(greatest(subtotal, 0), private.ledger_balance(org, inv.currency));
  if credit > 0 then
    perform private.ledger_append(org, -credit, inv.currency, 'invoice', 'invoice:' || inv.id,
                                  format('Applied to invoice for %s', inv.period_start), jsonb_build_object('invoice_id', inv.id));
    insert into billing.invoice_lines (organization_id, invoice_id, line_no, kind, description, quantity, unit_amount_minor, amount_minor, currency)
    select org, inv.id, coalesce(max(l.line_no), 0) + 1, 'credit', 'Credit applied', 1, -credit, -credit, inv.currency
      from billing.invoice_lines l where l.organization_id = org and l.invoice_id = inv.id;
  end if;
  select coalesce(sum(l.amount_minor), 0) into total from billing.invoice_lines l
   where l.organization_id = org and l.invoice_id = inv.id;
  update billing.invoices i set status = 'open', total_minor = total, finalized_at = now()
   where i.organization_id = org and i.id = inv.id;
  return total;
end
$fn$;
comment on function private.finalize_invoice is 'Definer twin of finalize_invoice.';
{{ m.private_grants('finalize_invoice') }}
{{ m.api_function('finalize_invoice', 'p_organization_id uuid, p_invoice_id uuid', 'bigint', 'p_organization_id, p_invoice_id',
   'Applies credits, stamps the total and opens a draft invoice; returns the total. Needs service_role or platform.billing.adjust (42501); unknown: P0002; not a draft: 55000.') }}

-- private.set_invoice_status(org uuid, invoice_id uuid, status text) -> void
-- Moves an invoice to paid, void or uncollectible (see invoices_lifecycle).
-- Voiding an invoice gives back the credit it used (key invoice-void:<id>).
-- Refuses: not trusted and no platform.billing.adjust (42501); unknown
-- invoice (P0002); an illegal move (23514).
create or replace function private.set_invoice_status(org uuid, invoice_id uuid, status text)
  returns void
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  inv billing.invoices;
  used bigint;
begin
  perform private.require_platform('platform.billing.adjust');
  select * into inv from billing.invoices i where i.organization_id = org and i.id = set_invoice_status.invoice_id for update;
  if not found then
    raise exception 'set_invoice_status: no invoice % in organization %', invoice_id, org using errcode = 'P0002';
  end if;
  update billing.invoices i set status = set_invoice_status.status where i.organization_id = org and i.id = inv.id;
  if set_invoice_status.status = 'void' then
    select -coalesce(sum(l.amount_minor), 0) into used from billing.credit_ledger l
     where l.organization_id = org and l.idempotency_key = 'invoice:' || inv.id;
    if used > 0 then
      perform private.ledger_append(org, used, inv.currency, 'refund', 'invoice-void:' || inv.id,
                                    'Credit returned by a voided invoice', jsonb_build_object('invoice_id', inv.id));
    end if;
  end if;
end
$fn$;
comment on function private.set_invoice_status is 'Definer twin of set_invoice_status.';
{{ m.private_grants('set_invoice_status') }}
{{ m.api_function('set_invoice_status', 'p_organization_id uuid, p_invoice_id uuid, p_status text', 'void', 'p_organization_id, p_invoice_id, p_status',
   'Marks an invoice paid, void (credit given back) or uncollectible. Needs service_role or platform.billing.adjust (42501); unknown: P0002; illegal move: 23514.') }}

{{ m.updated_at('billing.invoices') }}
