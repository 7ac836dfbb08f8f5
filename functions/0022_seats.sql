-- Seats (migrations/0022_seats.sql): the live plan's seat limit (the
-- feature that counts seats, max_seats) decides at invitation and at
-- joining. A paid seat is an active membership of type member; guests are
-- free. Members' requests (invite_member, accept_invitation, anything
-- through the role switch) are refused past the limit; the back end (a
-- trusted caller: service_role, a DBA's session) is not, as with the caps
-- of catalog.limits — support and provisioning may go past it — but its
-- seats are counted and recorded like any other, and billed as overage
-- where the plan has a seat price.
{% import 'sql/macros.sql' as m with context %}

-- private.require_seat(organization_id uuid, seats bigint) -> void
-- Refuses (54000, naming the plan, its limit and the count) when an
-- organization holding `seats` paid seats would be past the seat limit of
-- its live plan and that plan bills no seat overage. Limit -1 is
-- unlimited; a live plan without the seat feature, or no live plan, allows
-- no seat except the organization's first (its owner: creating an
-- organization never fails on seats). Nothing for a trusted caller.
-- Internal: the seat triggers call it.
create or replace function private.require_seat(organization_id uuid, seats bigint)
  returns void
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
declare
  feature catalog.features;
  plan catalog.plans := private.live_plan(require_seat.organization_id);
  pf catalog.plan_features;
begin
  if seats <= 1 or private.is_trusted_caller() then
    return;
  end if;
  select * into feature from catalog.features f where f.counts = 'seats' order by f.key limit 1;
  if not found then
    return;  -- a catalog that limits no seats
  end if;
  select * into pf from catalog.plan_features p where p.plan_key = plan.key and p.feature_key = feature.key;
  if pf.limit_value = -1 or seats <= pf.limit_value or pf.overage_unit_price_minor is not null then
    return;
  end if;
  raise exception 'limit % reached: plan % allows % paid seat(s) and bills no overage; organization % would have %',
    feature.key, coalesce(plan.key, '(none)'), coalesce(pf.limit_value, 0), organization_id, seats
    using errcode = '54000',
          hint = 'Upgrade to a plan with more seats or seat overage, remove a member, or make the newcomer a guest (guests are free).';
end
$fn$;
comment on function private.require_seat is 'Internal: raises 54000 when a count of paid seats is past the live plan''s seat limit and the plan bills no overage.';
revoke all on function private.require_seat from public, anon, authenticated;

-- private.invitations_gate_seats() -> trigger
-- BEFORE INSERT on tenancy.invitations: an invitation is refused (54000)
-- when the organization has no paid seat left for the newcomer on a plan
-- without seat overage. An invitation holds no seat: when several are
-- pending, the joins decide (memberships_gate_seats).
create or replace function private.invitations_gate_seats()
  returns trigger
  language plpgsql
  {{ m.definer() }}
as $fn$
begin
  perform private.require_seat(new.organization_id, private.seats_used(new.organization_id) + 1);
  return new;
end
$fn$;
comment on function private.invitations_gate_seats is 'Trigger: no invitation to an organization whose plan has no paid seat left (54000).';
{{ m.row_trigger('tenancy.invitations', 'invitations_gate_seats', 'before insert', 'private.invitations_gate_seats') }}

-- private.memberships_gate_seats() -> trigger
-- AFTER INSERT or UPDATE row trigger on tenancy.memberships. When a row
-- gains a paid seat (inserted active as a member, a guest made a member, a
-- suspended member reactivated, moved to another organization), it
-- upserts the organization's usage.seat_peaks row of the current billing
-- period first: that row lock makes concurrent joins of one organization
-- count one after the other (each counts with a snapshot taken after the
-- previous one committed; under REPEATABLE READ the second fails with
-- 40001 instead), so 8 parallel joins with one seat left admit exactly
-- one. Then it counts the paid seats, refuses (54000, require_seat) past
-- the limit of a plan without seat overage, and records the period's
-- highest count (what seat overage is billed on). A trusted caller's
-- seat is counted and recorded, never refused (require_seat).
create or replace function private.memberships_gate_seats()
  returns trigger
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  period date;
  used bigint;
begin
  if new.status <> 'active' or new.member_type <> 'member' then
    return null;
  end if;
  if tg_op = 'UPDATE' and old.status = 'active' and old.member_type = 'member' and old.organization_id = new.organization_id then
    return null;  -- it held its seat already
  end if;
  select p.start_date into period from private.billing_period(new.organization_id, now()) p;
  insert into usage.seat_peaks as s (organization_id, period_start)
  values (new.organization_id, period)
  on conflict on constraint seat_peaks_pkey do update set updated_at = now();
  used := private.seats_used(new.organization_id);
  perform private.require_seat(new.organization_id, used);
  update usage.seat_peaks s set peak = used, updated_at = now()
   where s.organization_id = new.organization_id and s.period_start = period and s.peak < used;
  return null;
end
$fn$;
comment on function private.memberships_gate_seats is 'Trigger: a new paid seat is counted under the organization''s seat_peaks row lock, refused past a limit without overage (54000), and raises the period''s peak.';
{{ m.row_trigger('tenancy.memberships', 'memberships_gate_seats', 'after insert or update of status, member_type, organization_id', 'private.memberships_gate_seats') }}
