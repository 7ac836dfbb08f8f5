-- 0022 seats: the plan's max_seats decides at invitation and at joining.
--   * usage.seat_peaks: the highest number of paid seats (active
--     memberships of type member) each organization reached in each of its
--     billing periods, written by every join. Its row is also the lock
--     that counts concurrent joins of one organization one after the
--     other (functions/0022_seats.sql), and the period's seat overage is
--     billed on it.
-- Nothing is backfilled: before this release no join recorded a peak, and
-- the summaries bill the live seat count when it is higher.
{% import 'sql/macros.sql' as m with context %}

create table usage.seat_peaks (
  organization_id uuid not null references tenancy.organizations (id) on delete cascade,
  period_start date not null,
  peak bigint not null default 0,
  updated_at timestamptz not null default now(),
  primary key (organization_id, period_start),
  constraint seat_peaks_not_negative check (peak >= 0)
);
comment on table usage.seat_peaks is 'The highest number of paid seats (active memberships of type member) an organization reached at a join in each billing period; the row is the lock that serializes concurrent joins of one organization. Seat overage is billed on max(peak, live seats).';
comment on column usage.seat_peaks.period_start is 'First day of the organization''s billing period (its anchor day, in its time zone), as in usage.counters.';
comment on column usage.seat_peaks.peak is 'Highest count of paid seats after a join in the period.';
{{ m.table_grants('usage.seat_peaks', 'select') }}
