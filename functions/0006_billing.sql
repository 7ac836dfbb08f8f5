-- billing: calendar, subscription lifecycle, credits, payments, the inbox,
-- platform revenue. Invoices need usage fees and live in functions/0007_*.
{% import 'sql/macros.sql' as m with context %}

-- private.require_platform(permission text) -> void
-- Refuses (42501) a caller who is neither trusted nor holds the platform
-- permission. Used by the money-writing functions.
create or replace function private.require_platform(permission text)
  returns void
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
begin
  if not (private.is_trusted_caller() or private.has_system_permission(permission)) then
    raise exception 'only the service role or platform staff with % may do this', permission
      using errcode = '42501';
  end if;
end
$fn$;
comment on function private.require_platform is 'Raises 42501 unless the caller is trusted or holds the platform permission.';
{{ m.private_grants('require_platform', 'service_role') }}

-- private.require_member_or_platform(organization_id uuid, permission text, platform_permission text) -> void
-- Refuses (42501) a caller who is neither trusted, nor a member holding the
-- tenant permission, nor platform staff holding the platform permission.
create or replace function private.require_member_or_platform(organization_id uuid, permission text, platform_permission text)
  returns void
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
begin
  if not (private.is_trusted_caller()
          or private.has_permission(organization_id, permission)
          or private.has_system_permission(platform_permission)) then
    raise exception 'permission % is required in organization %', permission, organization_id
      using errcode = '42501';
  end if;
end
$fn$;
comment on function private.require_member_or_platform is 'Raises 42501 unless the caller is trusted, a member with the tenant permission, or staff with the platform permission.';
{{ m.private_grants('require_member_or_platform', 'service_role') }}

-- private.billing_period(organization_id uuid, at timestamptz) -> (period_start, period_end, start_date, end_date)
-- The billing period containing `at`: it starts at midnight, in the
-- organization's time zone, on its anchor day (the last day of a shorter
-- month for anchors 29-31). Without settings: calendar months in UTC.
-- Refuses nothing. Callable by authenticated and service_role.
create or replace function private.billing_period(organization_id uuid, at timestamptz)
  returns table (period_start timestamptz, period_end timestamptz, start_date date, end_date date)
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
declare
  tz text := 'UTC';
  anchor int := 1;
  local_day date;
  month_start date;
  candidate date;
begin
  select s.time_zone, s.anchor_day into tz, anchor
    from billing.settings s where s.organization_id = billing_period.organization_id;
  tz := coalesce(tz, 'UTC');
  anchor := coalesce(anchor, 1);
  local_day := (at at time zone tz)::date;
  month_start := date_trunc('month', local_day)::date;
  candidate := month_start + (least(anchor, extract(day from month_start + interval '1 month' - interval '1 day')::int) - 1);
  if local_day < candidate then
    month_start := (month_start - interval '1 month')::date;
    candidate := month_start + (least(anchor, extract(day from month_start + interval '1 month' - interval '1 day')::int) - 1);
  end if;
  start_date := candidate;
  month_start := (month_start + interval '1 month')::date;
  end_date := month_start + (least(anchor, extract(day from month_start + interval '1 month' - interval '1 day')::int) - 1);
  period_start := start_date::timestamp at time zone tz;
  period_end := end_date::timestamp at time zone tz;
  return next;
end
$fn$;
comment on function private.billing_period is 'The billing period holding a moment: anchor day (clamped to month end), midnight in the organization''s time zone.';
{{ m.private_grants('billing_period', 'service_role') }}

-- Subscriptions -------------------------------------------------------------

-- private.subscriptions_status_transition() -> trigger
-- BEFORE UPDATE OF status: refuses (23514, subscriptions_status_transition)
-- a move the state machine does not allow, and stamps canceled_at.
--   trialing -> active | past_due | canceled
--   active   -> past_due | canceled
--   past_due -> active | unpaid | canceled
--   unpaid   -> active | canceled
--   canceled -> (nothing: start a new subscription)
create or replace function private.subscriptions_status_transition()
  returns trigger
  language plpgsql
  {{ m.pinned() }}
as $fn$
begin
  if new.status is distinct from old.status then
    if not (old.status, new.status) in (
        ('trialing', 'active'), ('trialing', 'past_due'), ('trialing', 'canceled'),
        ('active', 'past_due'), ('active', 'canceled'),
        ('past_due', 'active'), ('past_due', 'unpaid'), ('past_due', 'canceled'),
        ('unpaid', 'active'), ('unpaid', 'canceled')) then
      raise exception 'subscription % cannot go from % to %', old.id, old.status, new.status
        using errcode = '23514', constraint = 'subscriptions_status_transition';
    end if;
    if new.status = 'canceled' then
      new.canceled_at := coalesce(new.canceled_at, now());
    end if;
  end if;
  return new;
end
$fn$;
comment on function private.subscriptions_status_transition is 'Trigger: the subscription status state machine (23514 on an illegal move).';
{{ m.row_trigger('billing.subscriptions', 'subscriptions_status_transition', 'before update of status', 'private.subscriptions_status_transition') }}

-- private.subscriptions_record_history() -> trigger
-- AFTER INSERT OR UPDATE: writes a subscription_history row for every new
-- subscription and every plan or status change, so no client can skip it.
-- change_type: created, upgrade / downgrade (by plan rank), cancelled,
-- reactivated, trial_ended, status_changed. A cancellation's new plan is
-- null. The transaction-local settings tenantdb.change_event,
-- tenantdb.change_amount_paid (minor units), tenantdb.change_reason and
-- tenantdb.change_by, set by the function making the change, fill
-- provider_event_id, amount_paid_minor, reason and created_by.
create or replace function private.subscriptions_record_history()
  returns trigger
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  kind text;
  old_rank int;
  new_rank int;
begin
  if tg_op = 'INSERT' then
    kind := case when new.status = 'trialing' then 'trial_started' else 'created' end;
    insert into billing.subscription_history (organization_id, subscription_id, old_plan_key, new_plan_key,
                                              old_status, new_status, change_type, created_by)
    values (new.organization_id, new.id, null, new.plan_key, null, new.status, kind, auth.uid());
    return null;
  end if;
  if new.plan_key is distinct from old.plan_key then
    select rank into old_rank from catalog.plans where key = old.plan_key;
    select rank into new_rank from catalog.plans where key = new.plan_key;
    kind := case when new_rank >= old_rank then 'upgrade' else 'downgrade' end;
  elsif new.status is distinct from old.status then
    kind := case
      when new.status = 'canceled' then 'cancelled'
      when old.status = 'trialing' and new.status = 'active' then 'trial_ended'
      when old.status in ('past_due', 'unpaid') and new.status = 'active' then 'reactivated'
      else 'status_changed' end;
  elsif new.pending_plan_key is distinct from old.pending_plan_key and new.pending_plan_key is not null then
    kind := 'downgrade_scheduled';
  elsif new.current_period_start is distinct from old.current_period_start then
    kind := 'renewed';
  else
    return null;
  end if;
  -- A cancellation leaves no plan: its new plan is null (seed 003).
  insert into billing.subscription_history (organization_id, subscription_id, old_plan_key, new_plan_key,
                                            old_status, new_status, change_type, created_by,
                                            proration_credit_minor, proration_charge_minor, reason,
                                            provider_event_id, amount_paid_minor)
  values (new.organization_id, new.id, old.plan_key,
          case when kind <> 'cancelled' then coalesce(new.pending_plan_key, new.plan_key) end,
          old.status, new.status, kind,
          coalesce(nullif(current_setting('tenantdb.change_by', true), '')::uuid, auth.uid()),
          nullif(current_setting('tenantdb.proration_credit', true), '')::bigint,
          nullif(current_setting('tenantdb.proration_charge', true), '')::bigint,
          nullif(current_setting('tenantdb.change_reason', true), ''),
          nullif(current_setting('tenantdb.change_event', true), ''),
          nullif(current_setting('tenantdb.change_amount_paid', true), '')::bigint);
  return null;
end
$fn$;
comment on function private.subscriptions_record_history is 'Trigger: every new subscription and plan/status change gets a subscription_history row.';
{{ m.row_trigger('billing.subscriptions', 'subscriptions_record_history', 'after insert or update', 'private.subscriptions_record_history') }}

{{ m.append_only('billing.subscription_history') }}

-- private.start_free_subscription() -> trigger
-- AFTER INSERT on tenancy.organizations: every new organization (personal
-- ones at signup included) starts on the active plan 'free', for the
-- current billing period. Does nothing when the catalog has no such plan.
create or replace function private.start_free_subscription()
  returns trigger
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  p record;
  plan_currency char(3);
begin
  select pl.currency into plan_currency from catalog.plans pl where pl.key = 'free' and pl.is_active;
  if not found then
    return null;
  end if;
  select * into p from private.billing_period(new.id, now());
  insert into billing.subscriptions (organization_id, plan_key, status, current_period_start, current_period_end)
  values (new.id, 'free', 'active', p.period_start, p.period_end);
  return null;
end
$fn$;
comment on function private.start_free_subscription is 'Trigger on tenancy.organizations: the free plan''s subscription for every new organization (the signup hook of DESIGN.md).';
{{ m.row_trigger('tenancy.organizations', 'organizations_start_free_subscription', 'after insert', 'private.start_free_subscription') }}

-- private.has_financial_records(organization_id uuid) -> boolean
-- Whether the organization has records the law asks to keep: finalized
-- invoices, credit ledger entries, settled payments, platform revenue.
-- Refuses nothing. Internal: the deletion guards ask it.
create or replace function private.has_financial_records(organization_id uuid)
  returns boolean
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
begin
  return exists (select from billing.invoices i where i.organization_id = has_financial_records.organization_id and i.status <> 'draft')
      or exists (select from billing.credit_ledger l where l.organization_id = has_financial_records.organization_id)
      or exists (select from billing.one_off_payments p where p.organization_id = has_financial_records.organization_id and p.status <> 'pending')
      or exists (select from billing.platform_revenue r where r.organization_id = has_financial_records.organization_id);
end
$fn$;
comment on function private.has_financial_records is 'Internal: whether an organization holds invoices, ledger entries, payments or revenue that must be kept.';
revoke all on function private.has_financial_records from public, anon, authenticated;

-- private.organizations_keep_financial_records() -> trigger
-- BEFORE DELETE on tenancy.organizations: refuses (55000,
-- organizations_keep_financial_records) deleting an organization that has
-- finalized invoices, credit ledger entries, payments or platform revenue —
-- records the law says to keep. Set its status to deleted instead. An
-- organization with only its subscription and history may be deleted.
create or replace function private.organizations_keep_financial_records()
  returns trigger
  language plpgsql
  {{ m.definer() }}
as $fn$
begin
  if private.has_financial_records(old.id) then
    raise exception 'organization % has financial records and cannot be deleted', old.id
      using errcode = '55000', constraint = 'organizations_keep_financial_records',
            hint = 'Set its status to deleted instead: its invoices, ledger and payments must be kept.';
  end if;
  return old;
end
$fn$;
comment on function private.organizations_keep_financial_records is 'Trigger: an organization with invoices, ledger entries, payments or revenue is never hard-deleted (55000).';
{{ m.row_trigger('tenancy.organizations', 'organizations_keep_financial_records', 'before delete', 'private.organizations_keep_financial_records') }}

-- private.record_subscription_change(p_organization_id uuid, p_old_plan_id uuid, p_new_plan_id uuid,
--   p_change_type varchar, p_stripe_event_id varchar, p_amount_paid numeric, p_created_by uuid) -> uuid
-- Seed 003's signature, and the one way a change reported from outside (a
-- provider event, a sales contract) is made: it changes the subscription
-- and returns the id of the one subscription_history row of the change.
--   upgrade / downgrade: the live subscription on p_old_plan_id moves to
--     p_new_plan_id now (the provider already charged: no proration, a
--     pending downgrade is dropped); cancelled: it is canceled now;
--     reactivated: past_due or unpaid -> active; trial_ended: trialing ->
--     active. The history row, written by the subscriptions trigger, carries
--     p_stripe_event_id, p_amount_paid (major units, stored x 100 in minor
--     units, rounded half away from zero) and p_created_by.
--   Already made (the subscription is on p_new_plan_id, canceled, active):
--     the history row of that change is returned, no second row: the row
--     with p_stripe_event_id when there is one, else the latest row of the
--     change. A replay with the same event id returns the same row.
--   trial_started, and a change the subscription does not match (another
--     plan than p_old_plan_id, no subscription): only recorded, as a row
--     with reported = true.
-- Plan ids are catalog.plans.id. Refuses: not trusted and no
-- platform.billing.adjust (42501); unknown organization or plan id
-- (P0002); unknown change type, or upgrade/downgrade against the plans'
-- ranks (22023). Callable by service_role and platform staff.
create or replace function private.record_subscription_change(
  p_organization_id uuid, p_old_plan_id uuid, p_new_plan_id uuid, p_change_type varchar,
  p_stripe_event_id varchar, p_amount_paid numeric, p_created_by uuid)
  returns uuid
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  old_plan catalog.plans;
  new_plan catalog.plans;
  sub billing.subscriptions;
  made_id uuid;
  new_status text;
begin
  perform private.require_platform('platform.billing.adjust');
  if not exists (select from tenancy.organizations o where o.id = p_organization_id) then
    raise exception 'record_subscription_change: no organization %', p_organization_id using errcode = 'P0002';
  end if;
  if p_old_plan_id is not null then
    select * into old_plan from catalog.plans where id = p_old_plan_id;
    if not found then raise exception 'record_subscription_change: no plan %', p_old_plan_id using errcode = 'P0002'; end if;
  end if;
  if p_new_plan_id is not null then
    select * into new_plan from catalog.plans where id = p_new_plan_id;
    if not found then raise exception 'record_subscription_change: no plan %', p_new_plan_id using errcode = 'P0002'; end if;
  end if;
  if p_change_type is null or p_change_type not in ('upgrade', 'downgrade', 'cancelled', 'reactivated', 'trial_started', 'trial_ended') then
    raise exception 'record_subscription_change: change type "%" is not one of upgrade, downgrade, cancelled, reactivated, trial_started, trial_ended', p_change_type
      using errcode = '22023';
  end if;
  if p_change_type in ('upgrade', 'downgrade') and old_plan.key is not null and new_plan.key is not null
     and (p_change_type = 'upgrade') <> (new_plan.rank >= old_plan.rank) then
    raise exception 'record_subscription_change: % to % is not a % (plan ranks % and %)', old_plan.key, new_plan.key, p_change_type,
      old_plan.rank, new_plan.rank using errcode = '22023';
  end if;
  -- A replay of the same provider event: the row it made.
  if p_stripe_event_id is not null then
    select h.id into made_id from billing.subscription_history h
     where h.organization_id = p_organization_id and h.provider_event_id = p_stripe_event_id and h.change_type = p_change_type
     order by h.created_at desc limit 1;
    if found then
      return made_id;
    end if;
  end if;
  select * into sub from billing.subscriptions s
   where s.organization_id = p_organization_id and s.status <> 'canceled' for update;
  perform set_config('tenantdb.change_event', coalesce(p_stripe_event_id, ''), true),
          set_config('tenantdb.change_amount_paid', coalesce(round(p_amount_paid * 100)::bigint::text, ''), true),
          set_config('tenantdb.change_by', coalesce(p_created_by::text, ''), true);
  if sub.id is not null and p_change_type in ('upgrade', 'downgrade') and new_plan.key is not null
     and sub.plan_key = coalesce(old_plan.key, sub.plan_key) and sub.plan_key <> new_plan.key then
    update billing.subscriptions s set plan_key = new_plan.key, pending_plan_key = null, last_event_at = now()
     where s.organization_id = sub.organization_id and s.id = sub.id;
  elsif sub.id is not null and p_change_type = 'cancelled' and sub.plan_key = coalesce(old_plan.key, sub.plan_key) then
    update billing.subscriptions s set status = 'canceled', last_event_at = now()
     where s.organization_id = sub.organization_id and s.id = sub.id;
  elsif sub.id is not null and (p_change_type, sub.status) in (('reactivated', 'past_due'), ('reactivated', 'unpaid'), ('trial_ended', 'trialing')) then
    update billing.subscriptions s set status = 'active', last_event_at = now()
     where s.organization_id = sub.organization_id and s.id = sub.id;
  else
    -- Already made, by another path: the row of that change.
    select h.id into made_id from billing.subscription_history h
     where h.organization_id = p_organization_id and not h.reported and h.change_type = p_change_type
       and h.old_plan_key is not distinct from coalesce(old_plan.key, h.old_plan_key)
       and (h.new_plan_key is not distinct from new_plan.key or p_change_type <> 'upgrade' and p_change_type <> 'downgrade')
       and (sub.id is null or h.subscription_id = sub.id or p_change_type = 'cancelled')
       and (p_change_type <> 'cancelled' or sub.id is null)
       and (p_change_type not in ('upgrade', 'downgrade') or sub.plan_key = new_plan.key)
       and (p_change_type not in ('reactivated', 'trial_ended') or sub.status = 'active')
     order by h.created_at desc limit 1;
    if made_id is null then
      -- Nothing the subscription matches: recorded as reported.
      select s.id into sub.id from billing.subscriptions s
       where s.organization_id = p_organization_id order by (s.status <> 'canceled') desc, s.created_at desc limit 1;
      insert into billing.subscription_history (organization_id, subscription_id, old_plan_key, new_plan_key, change_type,
                                                provider_event_id, amount_paid_minor, created_by, reported)
      values (p_organization_id, sub.id, old_plan.key, new_plan.key, p_change_type, p_stripe_event_id,
              round(p_amount_paid * 100)::bigint, coalesce(p_created_by, auth.uid()), true)
      returning id into made_id;
    end if;
    perform set_config('tenantdb.change_event', '', true), set_config('tenantdb.change_amount_paid', '', true),
            set_config('tenantdb.change_by', '', true);
    return made_id;
  end if;
  perform set_config('tenantdb.change_event', '', true), set_config('tenantdb.change_amount_paid', '', true),
            set_config('tenantdb.change_by', '', true);
  select h.id into made_id from billing.subscription_history h
   where h.organization_id = p_organization_id and h.subscription_id = sub.id
   order by h.created_at desc, h.id desc limit 1;
  return made_id;
end
$fn$;
comment on function private.record_subscription_change is 'Definer twin of record_subscription_change.';
{{ m.private_grants('record_subscription_change') }}
{{ m.api_function('record_subscription_change',
   'p_organization_id uuid, p_old_plan_id uuid, p_new_plan_id uuid, p_change_type varchar, p_stripe_event_id varchar default null, p_amount_paid numeric default null, p_created_by uuid default null',
   'uuid', 'p_organization_id, p_old_plan_id, p_new_plan_id, p_change_type, p_stripe_event_id, p_amount_paid, p_created_by',
   'Makes a reported subscription change (upgrade/downgrade now, cancel, reactivate, end a trial) and returns its one history row; a change already made returns its row. Needs service_role or platform.billing.adjust (42501); unknown organization or plan: P0002; unknown change type or a rank-contradicting upgrade/downgrade: 22023.') }}

-- private.change_subscription_plan(organization_id uuid, plan_key text) -> jsonb
-- Moves the live subscription to another active plan and returns
-- {"change", "effective_at", "credit_minor", "charge_minor"}.
-- Upgrade (higher rank, or same rank and higher price): takes effect now.
-- For an active subscription, the unused part of the old plan, prorated by
-- the second, is credited to the ledger, rounded DOWN to the minor unit,
-- and the new plan for the rest of the period is billed on the next
-- invoice, rounded UP (trialing, past_due, unpaid: no proration).
-- Downgrade: waits for the end of the period (pending_plan_key). A local
-- change stamps last_event_at: an older provider event will not undo it.
-- Refuses: not the service role and no platform.billing.adjust (42501:
-- members change plans through the payment provider, whose confirmation
-- the back end applies); no live subscription or unknown/inactive plan
-- (P0002); the current plan, or a plan in another currency (22023).
create or replace function private.change_subscription_plan(organization_id uuid, plan_key text)
  returns jsonb
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  sub billing.subscriptions;
  old_plan catalog.plans;
  new_plan catalog.plans;
  total_s numeric;
  left_s numeric;
  credit bigint := 0;
  charge bigint := 0;
begin
  perform private.require_platform('platform.billing.adjust');
  select * into sub from billing.subscriptions s
   where s.organization_id = change_subscription_plan.organization_id and s.status <> 'canceled' for update;
  if not found then
    raise exception 'change_subscription_plan: organization % has no live subscription', organization_id using errcode = 'P0002';
  end if;
  select * into new_plan from catalog.plans p where p.key = change_subscription_plan.plan_key and p.is_active;
  if not found then
    raise exception 'change_subscription_plan: no active plan "%"', plan_key using errcode = 'P0002';
  end if;
  select * into old_plan from catalog.plans p where p.key = sub.plan_key;
  if new_plan.key = old_plan.key then
    raise exception 'change_subscription_plan: already on plan %', plan_key using errcode = '22023';
  end if;
  if new_plan.currency <> old_plan.currency and old_plan.price_minor > 0 then
    raise exception 'change_subscription_plan: plan % is in %, the subscription in %', plan_key, new_plan.currency, old_plan.currency
      using errcode = '22023';
  end if;
  if (new_plan.rank, new_plan.price_minor) > (old_plan.rank, old_plan.price_minor) then
    -- Only a paid-for (active) period is prorated: a trial or an unpaid
    -- period gives no credit, and its upgrade costs nothing extra.
    if sub.status = 'active' then
      total_s := extract(epoch from sub.current_period_end - sub.current_period_start);
      left_s := least(total_s, greatest(0, extract(epoch from sub.current_period_end - now())));
      credit := floor(old_plan.price_minor * left_s / total_s);
      charge := ceil(new_plan.price_minor * left_s / total_s);
    end if;
    if credit > 0 then
      perform private.ledger_append(sub.organization_id, credit, old_plan.currency, 'proration',
        format('proration:%s:%s:%s', sub.id, old_plan.key, extract(epoch from now())),
        format('Unused part of plan %s', old_plan.name),
        jsonb_build_object('subscription_id', sub.id, 'from_plan', old_plan.key, 'to_plan', new_plan.key));
    end if;
    perform set_config('tenantdb.proration_credit', credit::text, true),
            set_config('tenantdb.proration_charge', charge::text, true);
    update billing.subscriptions s set plan_key = new_plan.key, pending_plan_key = null, last_event_at = now()
     where s.organization_id = sub.organization_id and s.id = sub.id;
    perform set_config('tenantdb.proration_credit', '', true), set_config('tenantdb.proration_charge', '', true);
    return jsonb_build_object('change', 'upgrade', 'effective_at', now(), 'credit_minor', credit, 'charge_minor', charge);
  end if;
  update billing.subscriptions s set pending_plan_key = new_plan.key, last_event_at = now()
   where s.organization_id = sub.organization_id and s.id = sub.id;
  return jsonb_build_object('change', 'downgrade', 'effective_at', sub.current_period_end, 'credit_minor', 0, 'charge_minor', 0);
end
$fn$;
comment on function private.change_subscription_plan is 'Definer twin of change_subscription_plan.';
{{ m.private_grants('change_subscription_plan') }}
{{ m.api_function('change_subscription_plan', 'p_organization_id uuid, p_plan_key text', 'jsonb', 'p_organization_id, p_plan_key',
   'Upgrade now (unused old plan credited, rounded down; rest of period on the new plan billed next invoice, rounded up) or downgrade at period end. Needs service_role or platform.billing.adjust (42501); no live subscription or plan: P0002; same plan or other currency: 22023.') }}

-- private.renew_subscriptions(at timestamptz) -> integer
-- For every live subscription whose period ended by `at`: applies a pending
-- downgrade, cancels one set to cancel at period end, otherwise starts the
-- next period. Returns how many subscriptions moved. Safe to re-run.
-- Refuses: not trusted (42501). Callable by service_role (a cron job).
create or replace function private.renew_subscriptions(at timestamptz)
  returns integer
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  sub billing.subscriptions;
  p record;
  moved int := 0;
begin
  perform private.require_platform('platform.billing.adjust');
  for sub in select * from billing.subscriptions s
              where s.status <> 'canceled' and s.current_period_end <= at
              order by s.organization_id for update skip locked loop
    if sub.cancel_at_period_end then
      update billing.subscriptions s set status = 'canceled', canceled_at = sub.current_period_end
       where s.organization_id = sub.organization_id and s.id = sub.id;
    else
      select * into p from private.billing_period(sub.organization_id, sub.current_period_end);
      update billing.subscriptions s
         set plan_key = coalesce(sub.pending_plan_key, sub.plan_key), pending_plan_key = null,
             current_period_start = p.period_start, current_period_end = p.period_end
       where s.organization_id = sub.organization_id and s.id = sub.id;
    end if;
    moved := moved + 1;
  end loop;
  return moved;
end
$fn$;
comment on function private.renew_subscriptions is 'Cron: rolls ended periods forward, applying scheduled downgrades and cancellations.';
{{ m.private_grants('renew_subscriptions') }}
{{ m.api_function('renew_subscriptions', 'p_at timestamptz default now()', 'integer', 'p_at',
   'Cron: rolls ended subscription periods forward (scheduled downgrades, cancellations); returns how many. Needs service_role or platform.billing.adjust (42501).') }}

-- private.cancel_subscription(organization_id uuid, at_period_end boolean) -> void
-- Cancels the live subscription now, or at the end of its period.
-- Refuses: not the service role and no platform.billing.adjust (42501); no
-- live subscription (P0002).
create or replace function private.cancel_subscription(organization_id uuid, at_period_end boolean)
  returns void
  language plpgsql
  {{ m.definer() }}
as $fn$
begin
  perform private.require_platform('platform.billing.adjust');
  if coalesce(at_period_end, true) then
    update billing.subscriptions s set cancel_at_period_end = true
     where s.organization_id = cancel_subscription.organization_id and s.status <> 'canceled';
  else
    update billing.subscriptions s set status = 'canceled'
     where s.organization_id = cancel_subscription.organization_id and s.status <> 'canceled';
  end if;
  if not found then
    raise exception 'cancel_subscription: organization % has no live subscription', organization_id using errcode = 'P0002';
  end if;
end
$fn$;
comment on function private.cancel_subscription is 'Definer twin of cancel_subscription.';
{{ m.private_grants('cancel_subscription') }}
{{ m.api_function('cancel_subscription', 'p_organization_id uuid, p_at_period_end boolean default true', 'void', 'p_organization_id, p_at_period_end',
   'Cancels the live subscription at period end (default) or now. Needs service_role or platform.billing.adjust (42501); none live: P0002.') }}

-- Credits -------------------------------------------------------------------

-- private.credit_ledger_guard() -> trigger
-- AFTER INSERT on credit_ledger: adds the entry to the running balance in
-- billing.credit_balances, whose CHECK (credit_ledger_balance_not_negative,
-- 23514) refuses an overdraft. The balance row is updated in place, so
-- concurrent postings queue on it and each sees the latest balance (READ
-- COMMITTED), or fail to serialize (40001, REPEATABLE READ / SERIALIZABLE):
-- never below zero. Every insert path goes through it.
create or replace function private.credit_ledger_guard()
  returns trigger
  language plpgsql
  {{ m.definer() }}
as $fn$
begin
  -- Update first: an INSERT's candidate row is checked before ON CONFLICT
  -- turns it into an update, so a spend would fail on its own sign.
  update billing.credit_balances b set balance_minor = b.balance_minor + new.amount_minor
   where b.organization_id = new.organization_id and b.currency = new.currency;
  if not found then
    insert into billing.credit_balances as b (organization_id, currency, balance_minor)
    values (new.organization_id, new.currency, new.amount_minor)
    on conflict on constraint credit_balances_pkey
    do update set balance_minor = b.balance_minor + excluded.balance_minor;
  end if;
  return null;
end
$fn$;
comment on function private.credit_ledger_guard is 'Trigger: keeps billing.credit_balances, whose CHECK keeps every balance >= 0 (23514).';
{{ m.row_trigger('billing.credit_ledger', 'credit_ledger_guard', 'after insert', 'private.credit_ledger_guard') }}
{{ m.append_only('billing.credit_ledger') }}

-- private.ledger_balance(organization_id uuid, currency text) -> bigint
-- Sum of the organization's ledger in the currency. No permission check:
-- only for the functions here (EXECUTE granted to nobody).
create or replace function private.ledger_balance(organization_id uuid, currency text)
  returns bigint
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
begin
  return (
    select coalesce(sum(l.amount_minor), 0)::bigint from billing.credit_ledger l
     where l.organization_id = ledger_balance.organization_id and l.currency = upper(ledger_balance.currency));
end
$fn$;
comment on function private.ledger_balance is 'Internal: credit balance without a permission check.';
revoke all on function private.ledger_balance from public, anon, authenticated;

-- private.ledger_append(organization_id uuid, amount_minor bigint, currency text, source text,
--   idempotency_key text, reason text, reference jsonb) -> table (entry_id uuid, duplicate boolean, balance_minor bigint)
-- Appends one ledger entry (+ grants credit, - spends it) and returns it
-- with the balance after. A key the organization already used returns the
-- first entry with duplicate = true and writes nothing. Refuses: zero
-- amount, missing key or reason (22023); the key reused for another amount
-- (22023); an overdraft (23514, from the ledger's trigger). No permission
-- check: called by post_credit, plan changes and invoices only.
create or replace function private.ledger_append(organization_id uuid, amount_minor bigint, currency text, source text,
                                                 idempotency_key text, reason text, reference jsonb)
  returns table (entry_id uuid, duplicate boolean, balance_minor bigint)
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  existing billing.credit_ledger;
begin
  if amount_minor is null or amount_minor = 0 or coalesce(idempotency_key, '') = '' or coalesce(reason, '') = '' then
    raise exception 'post_credit: a non-zero amount, an idempotency key and a reason are required' using errcode = '22023';
  end if;
  -- One posting of a key at a time, so a concurrent first posting of the
  -- same key is seen by the look-up below instead of failing on the key.
  perform pg_advisory_xact_lock(hashtextextended('tenantdb.credit:' || ledger_append.organization_id::text || ':' || ledger_append.idempotency_key, 0));
  select * into existing from billing.credit_ledger l
   where l.organization_id = ledger_append.organization_id and l.idempotency_key = ledger_append.idempotency_key;
  if found then
    if existing.amount_minor <> ledger_append.amount_minor or existing.currency <> upper(ledger_append.currency) then
      raise exception 'post_credit: idempotency key % was already used for % %', idempotency_key, existing.amount_minor, existing.currency
        using errcode = '22023';
    end if;
    return query select existing.id, true, private.ledger_balance(ledger_append.organization_id, existing.currency);
    return;
  end if;
  insert into billing.credit_ledger as l (organization_id, amount_minor, currency, source, reason, idempotency_key, reference, created_by)
  values (ledger_append.organization_id, ledger_append.amount_minor, upper(ledger_append.currency), ledger_append.source,
          ledger_append.reason, ledger_append.idempotency_key, coalesce(ledger_append.reference, '{}'), auth.uid())
  returning l.id into entry_id;
  return query select entry_id, false, private.ledger_balance(ledger_append.organization_id, upper(ledger_append.currency));
end
$fn$;
comment on function private.ledger_append is 'Internal: the one way entries are appended to the credit ledger.';
revoke all on function private.ledger_append from public, anon, authenticated;

-- private.post_credit(organization_id uuid, amount_minor bigint, currency text, source text,
--   idempotency_key text, reason text, reference jsonb) -> table (entry_id uuid, duplicate boolean, balance_minor bigint)
-- ledger_append for the back end and platform staff. Refuses: not trusted
-- and no platform.billing.adjust (42501); then as ledger_append.
create or replace function private.post_credit(organization_id uuid, amount_minor bigint, currency text, source text,
                                               idempotency_key text, reason text, reference jsonb)
  returns table (entry_id uuid, duplicate boolean, balance_minor bigint)
  language plpgsql
  {{ m.definer() }}
as $fn$
begin
  perform private.require_platform('platform.billing.adjust');
  if not exists (select from tenancy.organizations o where o.id = post_credit.organization_id) then
    raise exception 'post_credit: no organization %', organization_id using errcode = 'P0002';
  end if;
  return query select * from private.ledger_append(organization_id, amount_minor, currency, source, idempotency_key, reason, reference);
end
$fn$;
comment on function private.post_credit is 'Definer twin of post_credit.';
{{ m.private_grants('post_credit') }}
{{ m.api_function('post_credit',
   "p_organization_id uuid, p_amount_minor bigint, p_currency text, p_source text, p_idempotency_key text, p_reason text, p_reference jsonb default '{}'",
   'table (entry_id uuid, duplicate boolean, balance_minor bigint)',
   'p_organization_id, p_amount_minor, p_currency, p_source, p_idempotency_key, p_reason, p_reference',
   'Posts one credit ledger entry once per idempotency key; returns it, whether it was a replay, and the balance. Needs service_role or platform.billing.adjust (42501); unknown organization: P0002; overdraft: 23514; bad input: 22023.') }}

-- private.credit_balance(organization_id uuid, currency text) -> bigint
-- The organization's credit balance in the currency (sum of the ledger).
-- Refuses: not a member with billing.view, not trusted, not platform staff
-- with platform.tenant.read (42501). Callable by authenticated users.
create or replace function private.credit_balance(organization_id uuid, currency text)
  returns bigint
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
begin
  perform private.require_member_or_platform(credit_balance.organization_id, 'billing.view', 'platform.tenant.read');
  return private.ledger_balance(credit_balance.organization_id, credit_balance.currency);
end
$fn$;
comment on function private.credit_balance is 'Definer twin of credit_balance.';
{{ m.private_grants('credit_balance') }}
{{ m.api_function('credit_balance', "p_organization_id uuid, p_currency text default 'USD'", 'bigint', 'p_organization_id, p_currency',
   'The credit balance (sum of the ledger) in minor units. Needs billing.view (42501).', stable=true) }}

-- One-off payments ------------------------------------------------------------

-- private.one_off_payments_lifecycle() -> trigger
-- BEFORE UPDATE: refuses (23514, one_off_payments_status_transition) moves
-- other than pending -> succeeded | failed and succeeded -> refunded, and
-- freezes amount, currency and reason. Stamps succeeded_at.
create or replace function private.one_off_payments_lifecycle()
  returns trigger
  language plpgsql
  {{ m.pinned() }}
as $fn$
begin
  if (new.amount_minor, new.currency, new.reason, new.provider, new.provider_payment_id)
     is distinct from (old.amount_minor, old.currency, old.reason, old.provider, old.provider_payment_id) then
    raise exception 'one-off payment %: amount, currency, reason and provider ids cannot change', old.id
      using errcode = '23514', constraint = 'one_off_payments_frozen';
  end if;
  if new.status is distinct from old.status
     and not (old.status, new.status) in (('pending', 'succeeded'), ('pending', 'failed'), ('succeeded', 'refunded')) then
    raise exception 'one-off payment % cannot go from % to %', old.id, old.status, new.status
      using errcode = '23514', constraint = 'one_off_payments_status_transition';
  end if;
  if new.status = 'succeeded' and old.status <> 'succeeded' then
    new.succeeded_at := coalesce(new.succeeded_at, now());
  end if;
  return new;
end
$fn$;
comment on function private.one_off_payments_lifecycle is 'Trigger: one-off payment state machine and frozen amounts.';
{{ m.row_trigger('billing.one_off_payments', 'one_off_payments_lifecycle', 'before update', 'private.one_off_payments_lifecycle') }}

-- private.one_off_payments_post_topup() -> trigger
-- AFTER INSERT OR UPDATE OF status: a top-up that is (now) succeeded posts
-- its amount as credit, under the key topup:<payment id> — exactly once,
-- however often the success is reported. A refunded top-up takes its
-- credit back (key topup-refund:<id>), as much as has not been spent.
create or replace function private.one_off_payments_post_topup()
  returns trigger
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  clawback bigint;
begin
  if new.reason = 'topup' and new.status = 'succeeded' then
    insert into billing.credit_ledger (organization_id, amount_minor, currency, source, reason, idempotency_key, reference)
    values (new.organization_id, new.amount_minor, new.currency, 'topup', 'Credit top-up',
            'topup:' || new.id, jsonb_build_object('one_off_payment_id', new.id, 'provider_payment_id', new.provider_payment_id))
    on conflict on constraint credit_ledger_idempotent do nothing;
  elsif new.reason = 'topup' and new.status = 'refunded' and tg_op = 'UPDATE' and old.status = 'succeeded' then
    -- Take the refunded credit back, as much of it as is left.
    clawback := least(new.amount_minor, coalesce((select b.balance_minor from billing.credit_balances b
                                                   where b.organization_id = new.organization_id and b.currency = new.currency), 0));
    if clawback > 0 then
      insert into billing.credit_ledger (organization_id, amount_minor, currency, source, reason, idempotency_key, reference)
      values (new.organization_id, -clawback, new.currency, 'refund', 'Refunded top-up',
              'topup-refund:' || new.id, jsonb_build_object('one_off_payment_id', new.id, 'refunded_minor', new.amount_minor,
                                                            'already_spent_minor', new.amount_minor - clawback))
      on conflict on constraint credit_ledger_idempotent do nothing;
    end if;
  end if;
  return null;
end
$fn$;
comment on function private.one_off_payments_post_topup is 'Trigger: a succeeded top-up posts its credits once (key topup:<id>).';
{{ m.row_trigger('billing.one_off_payments', 'one_off_payments_post_topup', 'after insert or update of status', 'private.one_off_payments_post_topup') }}

-- private.record_one_off_payment(organization_id uuid, provider text, provider_payment_id text,
--   amount_minor bigint, currency text, reason text, status text) -> uuid
-- Creates the payment or moves it to the reported status (a repeated report
-- changes nothing) and returns its id. Refuses: not trusted and no
-- platform.billing.adjust (42501); bad values (the table's constraints).
create or replace function private.record_one_off_payment(organization_id uuid, provider text, provider_payment_id text,
                                                          amount_minor bigint, currency text, reason text, status text)
  returns uuid
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  pay_id uuid;
begin
  perform private.require_platform('platform.billing.adjust');
  insert into billing.one_off_payments as p (organization_id, provider, provider_payment_id, amount_minor, currency, reason)
  values (record_one_off_payment.organization_id, record_one_off_payment.provider, record_one_off_payment.provider_payment_id,
          record_one_off_payment.amount_minor, upper(record_one_off_payment.currency), record_one_off_payment.reason)
  on conflict on constraint one_off_payments_once_per_provider_payment do update set updated_at = p.updated_at
  returning p.id into pay_id;
  if exists (select from billing.one_off_payments p
              where p.organization_id = record_one_off_payment.organization_id and p.id = pay_id
                and (p.amount_minor, p.currency, p.reason)
                    is distinct from (record_one_off_payment.amount_minor, upper(record_one_off_payment.currency)::char(3), record_one_off_payment.reason)) then
    raise exception 'record_one_off_payment: payment % was reported before with another amount, currency or reason', provider_payment_id
      using errcode = '22023';
  end if;
  update billing.one_off_payments p set status = record_one_off_payment.status
   where p.organization_id = record_one_off_payment.organization_id and p.id = pay_id
     and p.status is distinct from record_one_off_payment.status;
  return pay_id;
end
$fn$;
comment on function private.record_one_off_payment is 'Definer twin of record_one_off_payment.';
{{ m.private_grants('record_one_off_payment') }}
{{ m.api_function('record_one_off_payment',
   'p_organization_id uuid, p_provider text, p_provider_payment_id text, p_amount_minor bigint, p_currency text, p_reason text, p_status text',
   'uuid', 'p_organization_id, p_provider, p_provider_payment_id, p_amount_minor, p_currency, p_reason, p_status',
   'Creates or advances a one-off payment (a succeeded top-up posts credit once). Needs service_role or platform.billing.adjust (42501).') }}

{{ m.updated_at('billing.subscriptions') }}
{{ m.updated_at('billing.one_off_payments') }}
{{ m.updated_at('billing.settings') }}

-- private.start_missing_free_subscriptions() -> integer
-- Gives every organization without a live subscription the free plan (when
-- the catalog has one) and returns how many. Run by `tenantdb seed` after
-- the catalog is loaded, so organizations made before it get one too.
create or replace function private.start_missing_free_subscriptions()
  returns integer
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  made int;
begin
  insert into billing.subscriptions (organization_id, plan_key, status, current_period_start, current_period_end)
  select o.id, 'free', 'active', p.period_start, p.period_end
    from tenancy.organizations o
    cross join lateral private.billing_period(o.id, now()) p
   where exists (select from catalog.plans pl where pl.key = 'free' and pl.is_active)
     and not exists (select from billing.subscriptions s where s.organization_id = o.id and s.status <> 'canceled');
  get diagnostics made = row_count;
  return made;
end
$fn$;
comment on function private.start_missing_free_subscriptions is 'Seed step: the free plan for organizations that have no live subscription.';
revoke all on function private.start_missing_free_subscriptions from public, anon, authenticated;

-- Payment-event inbox -------------------------------------------------------

{{ m.append_only('billing.payment_events') }}
{{ m.append_only('billing.payment_event_attempts') }}

-- private.ingest_payment_event(provider text, provider_event_id text, event_type text,
--   payload jsonb, occurred_at timestamptz) -> table (event_id uuid, duplicate boolean)
-- Stores a webhook before anything else happens to it and returns its id
-- and whether (provider, provider_event_id) had been stored before — then
-- nothing is written. Safe under concurrent deliveries of one event.
-- Refuses: not trusted and no platform.billing.adjust (42501); missing
-- provider, id, type or time, or a payload that is not an object (22023).
create or replace function private.ingest_payment_event(provider text, provider_event_id text, event_type text,
                                                        payload jsonb, occurred_at timestamptz)
  returns table (event_id uuid, duplicate boolean)
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  new_id uuid;
begin
  perform private.require_platform('platform.billing.adjust');
  if coalesce(provider, '') = '' or coalesce(provider_event_id, '') = '' or coalesce(event_type, '') = ''
     or occurred_at is null or jsonb_typeof(payload) is distinct from 'object' then
    raise exception 'ingest_payment_event: provider, provider_event_id, event_type, occurred_at and an object payload are required'
      using errcode = '22023';
  end if;
  insert into billing.payment_events as e (provider, provider_event_id, event_type, payload, occurred_at)
  values (ingest_payment_event.provider, ingest_payment_event.provider_event_id, ingest_payment_event.event_type,
          ingest_payment_event.payload, ingest_payment_event.occurred_at)
  on conflict on constraint payment_events_once_per_provider_event do nothing
  returning e.id into new_id;
  if new_id is not null then
    insert into billing.payment_event_processing (event_id) values (new_id);
    return query select new_id, false;
    return;
  end if;
  return query select e.id, true from billing.payment_events e
   where e.provider = ingest_payment_event.provider and e.provider_event_id = ingest_payment_event.provider_event_id;
end
$fn$;
comment on function private.ingest_payment_event is 'Definer twin of ingest_payment_event.';
{{ m.private_grants('ingest_payment_event') }}
{{ m.api_function('ingest_payment_event', 'p_provider text, p_provider_event_id text, p_event_type text, p_payload jsonb, p_occurred_at timestamptz',
   'table (event_id uuid, duplicate boolean)', 'p_provider, p_provider_event_id, p_event_type, p_payload, p_occurred_at',
   'Stores a payment webhook once per (provider, provider_event_id); returns its id and whether it was a duplicate. Needs service_role or platform.billing.adjust (42501); bad input: 22023.') }}

-- private.apply_payment_event(e billing.payment_events) -> text
-- Applies one inbox event and returns processed or skipped. Understands the
-- normalized types tenantdb documents (README):
--   subscription.updated  {organization_id, plan_key, status, current_period_start,
--                          current_period_end, provider_subscription_id, seats}
--   payment.succeeded / payment.failed / payment.refunded
--                         {organization_id, provider_payment_id, amount_minor, currency, reason}
--   invoice.paid, invoice.payment_succeeded, invoice.payment_failed,
--   invoice.voided, invoice.refunded, charge.refunded, and payment.* naming
--   an invoice (provider_invoice_id, invoice_id or metadata.invoice_id):
--                         settle one of our invoices (private.apply_invoice_event)
-- An event older than the subscription's last applied event is skipped, so
-- an older state never overwrites a newer one. Other types are skipped.
-- Raises on bad payloads (the attempt is recorded as failed).
create or replace function private.apply_payment_event(e billing.payment_events)
  returns text
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  org uuid := (e.payload ->> 'organization_id')::uuid;
  sub billing.subscriptions;
begin
  if e.event_type = 'subscription.updated' then
    select * into sub from billing.subscriptions s
     where s.organization_id = org and s.status <> 'canceled' for update;
    if not found then
      raise exception 'no live subscription for organization %', org using errcode = 'P0002';
    end if;
    if sub.last_event_at is not null and e.occurred_at < sub.last_event_at then
      return 'skipped';  -- older than the state already applied (ties: applied in arrival order)
    end if;
    perform set_config('tenantdb.change_event', e.provider_event_id, true);
    update billing.subscriptions s
       set plan_key = coalesce(e.payload ->> 'plan_key', s.plan_key),
           status = coalesce(e.payload ->> 'status', s.status),
           seats = coalesce((e.payload ->> 'seats')::int, s.seats),
           current_period_start = coalesce((e.payload ->> 'current_period_start')::timestamptz, s.current_period_start),
           current_period_end = coalesce((e.payload ->> 'current_period_end')::timestamptz, s.current_period_end),
           provider = case when coalesce(e.payload ->> 'provider_subscription_id', s.provider_subscription_id) is not null
                           then coalesce(s.provider, e.provider) end,
           provider_subscription_id = coalesce(e.payload ->> 'provider_subscription_id', s.provider_subscription_id),
           last_event_at = e.occurred_at
     where s.organization_id = sub.organization_id and s.id = sub.id;
    perform set_config('tenantdb.change_event', '', true);
    return 'processed';
  elsif e.event_type in ('invoice.paid', 'invoice.payment_succeeded', 'invoice.payment_failed', 'invoice.voided',
                         'invoice.refunded', 'charge.refunded')
     or (e.event_type in ('payment.succeeded', 'payment.failed', 'payment.refunded')
         and (e.payload ?| array['invoice_id', 'provider_invoice_id'] or e.payload -> 'metadata' ? 'invoice_id')) then
    return private.apply_invoice_event(e);
  elsif e.event_type in ('payment.succeeded', 'payment.failed', 'payment.refunded') then
    perform private.record_one_off_payment(org, e.provider, e.payload ->> 'provider_payment_id',
      (e.payload ->> 'amount_minor')::bigint, e.payload ->> 'currency', e.payload ->> 'reason',
      split_part(e.event_type, '.', 2));
    return 'processed';
  end if;
  return 'skipped';
end
$fn$;
comment on function private.apply_payment_event is 'Internal: applies one normalized inbox event (subscription.updated, payment.*, invoice.*).';
revoke all on function private.apply_payment_event from public, anon, authenticated;

-- private.claim_payment_events(worker text, max_events integer, lease interval) -> table (event_id uuid, attempt integer)
-- Claims up to max_events events that are pending, failed (fewer than 10
-- attempts), or whose lease ran out, oldest occurred_at first, with FOR
-- UPDATE SKIP LOCKED so concurrent workers never take the same one; marks
-- them processing until now() + lease and returns them. Commit, then
-- handle each with handle_payment_event in its own transaction. Refuses:
-- not trusted and no platform.billing.adjust (42501); max_events outside
-- 1..1000 (22023).
create or replace function private.claim_payment_events(worker text, max_events integer, lease interval)
  returns table (event_id uuid, attempt integer)
  language plpgsql
  {{ m.definer() }}
as $fn$
begin
  perform private.require_platform('platform.billing.adjust');
  if max_events is null or max_events not between 1 and 1000 then
    raise exception 'claim_payment_events: max_events must be between 1 and 1000' using errcode = '22023';
  end if;
  return query
  with claimable as (
    select p.event_id
      from billing.payment_event_processing p
      join billing.payment_events e on e.id = p.event_id
     where p.status = 'pending'
        or (p.status in ('failed', 'processing') and p.attempts < 10 and coalesce(p.locked_until, '-infinity') < now())
     order by e.occurred_at, e.received_at
     limit max_events
       for update of p skip locked
  )
  update billing.payment_event_processing p
     set status = 'processing', attempts = p.attempts + 1,
         locked_until = now() + coalesce(lease, interval '5 minutes'), updated_at = now()
    from claimable c
   where p.event_id = c.event_id
  returning p.event_id, p.attempts;
end
$fn$;
comment on function private.claim_payment_events is 'Definer twin of claim_payment_events.';
{{ m.private_grants('claim_payment_events') }}
{{ m.api_function('claim_payment_events', "p_worker text, p_max_events integer default 100, p_lease interval default interval '5 minutes'",
   'table (event_id uuid, attempt integer)', 'p_worker, p_max_events, p_lease',
   'Claims inbox events (SKIP LOCKED, oldest first) for a lease. Needs service_role or platform.billing.adjust (42501).') }}

-- private.handle_payment_event(event_id uuid, worker text) -> text
-- Applies one claimed event in a subtransaction and records the attempt:
-- processed, skipped (older than the applied state, or a type tenantdb
-- does not apply) or failed with its error (retried by a later claim).
-- Returns the outcome. Refuses: not trusted and no platform.billing.adjust
-- (42501); an unknown event (P0002).
create or replace function private.handle_payment_event(event_id uuid, worker text)
  returns text
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  ev billing.payment_events;
  attempt_no int;
  result text;
  problem text;
begin
  perform private.require_platform('platform.billing.adjust');
  select * into ev from billing.payment_events e where e.id = handle_payment_event.event_id;
  if not found then
    raise exception 'handle_payment_event: no event %', event_id using errcode = 'P0002';
  end if;
  select p.attempts into attempt_no from billing.payment_event_processing p where p.event_id = ev.id for update;
  begin
    result := private.apply_payment_event(ev);
  exception when others then
    result := 'failed';
    problem := sqlstate || ': ' || sqlerrm;
  end;
  update billing.payment_event_processing p
     set status = result, last_error = problem, locked_until = null, updated_at = now(),
         processed_at = case when result in ('processed', 'skipped') then now() end
   where p.event_id = ev.id;
  insert into billing.payment_event_attempts (event_id, attempt, worker, outcome, error)
  values (ev.id, greatest(attempt_no, 1), coalesce(worker, '?'), result, problem)
  on conflict on constraint payment_event_attempts_pkey do nothing;
  return result;
end
$fn$;
comment on function private.handle_payment_event is 'Definer twin of handle_payment_event.';
{{ m.private_grants('handle_payment_event') }}
{{ m.api_function('handle_payment_event', 'p_event_id uuid, p_worker text', 'text', 'p_event_id, p_worker',
   'Applies one claimed inbox event and records the attempt; returns processed, skipped or failed. Needs service_role or platform.billing.adjust (42501); unknown event: P0002.') }}

-- private.process_payment_events(worker text, max_events integer, lease interval) -> table (event_id uuid, outcome text, error text)
-- claim_payment_events and handle_payment_event for each, in the caller's
-- one transaction: convenient for small batches and tests. A worker that
-- wants each event committed on its own calls the two separately.
-- Refuses as claim_payment_events.
create or replace function private.process_payment_events(worker text, max_events integer, lease interval)
  returns table (event_id uuid, outcome text, error text)
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  claimed record;
  result text;
begin
  for claimed in select * from private.claim_payment_events(worker, max_events, lease) c
                  order by (select e.occurred_at from billing.payment_events e where e.id = c.event_id),
                           (select e.received_at from billing.payment_events e where e.id = c.event_id) loop
    result := private.handle_payment_event(claimed.event_id, worker);
    return query select claimed.event_id, result,
                        (select p.last_error from billing.payment_event_processing p where p.event_id = claimed.event_id);
  end loop;
end
$fn$;
comment on function private.process_payment_events is 'Definer twin of process_payment_events.';
{{ m.private_grants('process_payment_events') }}
{{ m.api_function('process_payment_events', "p_worker text, p_max_events integer default 100, p_lease interval default interval '5 minutes'",
   'table (event_id uuid, outcome text, error text)', 'p_worker, p_max_events, p_lease',
   'Claims and applies inbox events in provider time order in one transaction, recording each attempt. Needs service_role or platform.billing.adjust (42501).') }}

-- Platform revenue ------------------------------------------------------------

-- private.calculate_application_fee(p_organization_id uuid, p_amount_minor bigint) -> bigint
-- The platform's fee on a payment of p_amount_minor through the
-- organization's active connected account: amount x bps / 10000, rounded
-- half up to the minor unit. Refuses: no active connected account (P0002);
-- a negative amount (22023); not a member with billing.view, not trusted,
-- not platform staff (42501).
create or replace function private.calculate_application_fee(p_organization_id uuid, p_amount_minor bigint)
  returns bigint
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
declare
  bps int;
begin
  perform private.require_member_or_platform(p_organization_id, 'billing.view', 'platform.tenant.read');
  if p_amount_minor is null or p_amount_minor < 0 then
    raise exception 'calculate_application_fee: the amount must be >= 0' using errcode = '22023';
  end if;
  select a.application_fee_bps into bps from billing.connected_accounts a
   where a.organization_id = p_organization_id and a.status = 'active' order by a.created_at limit 1;
  if not found then
    raise exception 'calculate_application_fee: organization % has no active connected account', p_organization_id
      using errcode = 'P0002';
  end if;
  return floor((p_amount_minor * bps + 5000) / 10000.0)::bigint;
end
$fn$;
comment on function private.calculate_application_fee is 'Definer twin of calculate_application_fee.';
{{ m.private_grants('calculate_application_fee') }}
{{ m.api_function('calculate_application_fee', 'p_organization_id uuid, p_amount_minor bigint', 'bigint', 'p_organization_id, p_amount_minor',
   'The application fee (bps of the connected account, rounded half up) on an amount in minor units. No active account: P0002; negative amount: 22023; needs billing.view (42501).', stable=true) }}

-- private.track_platform_revenue(p_organization_id uuid, p_provider text, p_source_payment_id text,
--   p_gross_amount_minor bigint, p_currency text, p_occurred_at timestamptz) -> uuid
-- Records a payment through a connected account with its application fee,
-- once per (organization, provider, payment id); returns the row id.
-- Refuses: not trusted and no platform.billing.adjust (42501); then as
-- calculate_application_fee and the table's constraints.
create or replace function private.track_platform_revenue(p_organization_id uuid, p_provider text, p_source_payment_id text,
                                                          p_gross_amount_minor bigint, p_currency text, p_occurred_at timestamptz)
  returns uuid
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  row_id uuid;
begin
  perform private.require_platform('platform.billing.adjust');
  insert into billing.platform_revenue as r (organization_id, provider, source_payment_id, gross_amount_minor,
                                             application_fee_minor, currency, occurred_at)
  values (p_organization_id, p_provider, p_source_payment_id, p_gross_amount_minor,
          private.calculate_application_fee(p_organization_id, p_gross_amount_minor), upper(p_currency),
          coalesce(p_occurred_at, now()))
  on conflict (organization_id, provider, source_payment_id) do nothing
  returning r.id into row_id;
  if row_id is null then
    select r.id into row_id from billing.platform_revenue r
     where r.organization_id = p_organization_id and r.provider = p_provider and r.source_payment_id = p_source_payment_id;
  end if;
  return row_id;
end
$fn$;
comment on function private.track_platform_revenue is 'Definer twin of track_platform_revenue.';
{{ m.private_grants('track_platform_revenue') }}
{{ m.api_function('track_platform_revenue',
   'p_organization_id uuid, p_provider text, p_source_payment_id text, p_gross_amount_minor bigint, p_currency text, p_occurred_at timestamptz default now()',
   'uuid', 'p_organization_id, p_provider, p_source_payment_id, p_gross_amount_minor, p_currency, p_occurred_at',
   'Records a connected-account payment and its application fee once per payment id. Needs service_role or platform.billing.adjust (42501).') }}
{{ m.append_only('billing.platform_revenue') }}

-- Revenue summaries (seed 003), with the caller's rights: members see their
-- organization's rows, platform staff all of them.
create or replace view {{ api }}.organization_revenue_summary
  with (security_invoker = true) as
select r.organization_id, o.name as organization_name,
       date_trunc('month', r.occurred_at at time zone 'UTC')::date as month, r.currency,
       count(*) as payments, sum(r.gross_amount_minor) as gross_amount_minor,
       sum(r.application_fee_minor) as application_fee_minor,
       sum(r.gross_amount_minor - r.application_fee_minor) as net_amount_minor
  from billing.platform_revenue r
  join tenancy.organizations o on o.id = r.organization_id
 group by r.organization_id, o.name, 3, r.currency;
comment on view {{ api }}.organization_revenue_summary is 'Payments, gross, fees and net per organization, UTC month and currency (caller''s rights).';
{{ m.view_grants(api ~ '.organization_revenue_summary') }}

create or replace view {{ api }}.platform_revenue_summary
  with (security_invoker = true) as
select date_trunc('month', r.occurred_at at time zone 'UTC')::date as month, r.currency,
       count(distinct r.organization_id) as organizations, count(*) as payments,
       sum(r.gross_amount_minor) as gross_amount_minor, sum(r.application_fee_minor) as application_fee_minor
  from billing.platform_revenue r
 group by 1, r.currency;
comment on view {{ api }}.platform_revenue_summary is 'The platform''s earnings per UTC month and currency (rows the caller may read).';
{{ m.view_grants(api ~ '.platform_revenue_summary') }}
