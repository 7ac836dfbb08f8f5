-- 0021 meter aggregations (issue 19): a meter says how its usage adds up,
-- with Lago's set of aggregations:
--   sum          quantities of a billing period added up (api calls);
--                with recurring, a running total that never resets (a
--                stock of records: negative quantities take units back);
--   count        events of a billing period, whatever their quantity;
--   unique_count distinct values of a metadata field per period (MAU);
--   max          the highest quantity reported in a period (a gauge);
--   latest       the last quantity reported, by occurred_at (a gauge:
--                storage), carried into periods without a report;
--   live_count   live rows of a tenant table, kept by its gate_and_meter
--                trigger (projects); the old 'count'.
-- tenantdb: destructive (usage.events' positive-quantity check is dropped:
-- no row is; nothing asks for --yes).
-- Existing rows: 'count' meters become live_count; the default catalog's
-- storage_used becomes latest, user_active unique_count (field user_id)
-- and record_created a recurring sum, and their counters are recomputed
-- from the events under the new meaning.
{% import 'sql/macros.sql' as m with context %}

-- The aggregation check is widened in place: every existing row passed
-- the narrower one, so NOT VALID (no scan under the lock) loses nothing;
-- new and updated rows are checked. 'count' becomes 'live_count'. (The
-- column is not made again: dropping it, its values copied, would make
-- every upgrade of a seeded database ask for --yes.)
alter table catalog.meters
  drop constraint meters_aggregation_known,
  add constraint meters_aggregation_known
    check (aggregation in ('sum', 'count', 'unique_count', 'max', 'latest', 'live_count')) not valid;
update catalog.meters set aggregation = 'live_count' where aggregation = 'count';
comment on column catalog.meters.aggregation is 'How a period''s usage adds up: sum (quantities; recurring: a running total), count (events), unique_count (distinct values of metadata field_name), max (highest quantity reported), latest (last quantity reported by occurred_at, carried over), live_count (live rows of a table, kept by its gate_and_meter trigger).';

alter table catalog.meters add column recurring boolean not null default false
  constraint meters_recurring_is_a_sum check (not recurring or aggregation = 'sum');
comment on column catalog.meters.recurring is 'For a sum: the total never resets at a period''s start (a stock, Lago''s recurring); record_usage takes negative quantities to give units back, never below zero. A period is billed on its highest total.';

alter table catalog.meters add column field_name text
  constraint meters_field_name_shape check (field_name ~ '^[a-z][a-z0-9_]*$' and length(field_name) <= 200);
alter table catalog.meters add constraint meters_field_name_for_unique_count
  check ((aggregation = 'unique_count') = (field_name is not null)) not valid;
comment on column catalog.meters.field_name is 'For unique_count: the metadata key whose distinct values a period counts (user_id; when absent, user_id is the signed-in user recording the event).';

-- Gauges and stocks may report zero, and a recurring sum takes units back:
-- the sign is checked by record_usage against the meter's aggregation.
alter table usage.events drop constraint events_quantity_positive;
alter table usage.events add constraint events_quantity_range
  check (quantity between -1000000000000 and 1000000000000) not valid;
comment on column usage.events.quantity is 'Units of the meter the event reports (sum, count, unique_count: > 0; max, latest: >= 0, the gauge''s value; recurring sum: any but 0, negative gives units back); at most the meter''s max_per_event.';

alter table usage.counters add column last_at timestamptz;
comment on column usage.counters.last_at is 'latest meters: occurred_at of the value in quantity (slot 0), so a late event older than it does not replace it; null for other meters.';
comment on column usage.counters.quantity is 'The meter''s usage in this slot and period (the total is the sum of the slots): sum: units; count, unique_count: events, distinct values; max, latest (slot 0): the gauge''s value; live_count and recurring sum (slot 0): the highest total of the period.';

create table usage.unique_values (
  organization_id uuid not null references tenancy.organizations (id) on delete cascade,
  meter_key text not null references catalog.meters (key) on update cascade,
  period_start date not null,
  value text not null,
  first_event_id uuid not null,
  primary key (organization_id, meter_key, period_start, value),
  constraint unique_values_value_length check (length(value) between 1 and 200),
  constraint unique_values_meter_key_length check (length(meter_key) <= 200)
);
create index unique_values_meter on usage.unique_values (meter_key);
comment on table usage.unique_values is 'The distinct values a unique_count meter has seen per organization and billing period (monthly active users): the first event with a value inserts it and counts one, later ones count nothing.';
comment on column usage.unique_values.value is 'The value of the meter''s field_name in the event''s metadata (a user id for MAU).';
comment on column usage.unique_values.first_event_id is 'The event that first reported the value in the period.';
{{ m.table_grants('usage.unique_values', 'select') }}

-- Data: the default catalog's meters get the aggregation their names mean.
update catalog.meters set aggregation = 'latest' where key = 'storage_used' and aggregation = 'sum';
update catalog.meters set aggregation = 'unique_count', field_name = 'user_id' where key = 'user_active' and aggregation = 'sum';
update catalog.meters set recurring = true where key = 'record_created' and aggregation = 'sum';

-- Their counters, recomputed from the events: each event in its billing
-- period (the organization's calendar, as record_usage places it).
create temporary table meter_events as
select e.organization_id, e.meter_key, e.id, e.quantity, e.occurred_at, e.recorded_at,
       coalesce(e.metadata ->> mt.field_name, case when mt.field_name = 'user_id' then e.user_id::text end) as value,
       case when exists (select from billing.settings s where s.organization_id = e.organization_id)
            then (select p.start_date from private.billing_period(e.organization_id, e.occurred_at) p)
            else date_trunc('month', e.occurred_at at time zone 'UTC')::date end as period
  from usage.events e
  join catalog.meters mt on mt.key = e.meter_key
 where mt.aggregation in ('latest', 'unique_count') or mt.recurring;

delete from usage.counters c using catalog.meters mt
 where mt.key = c.meter_key and (mt.aggregation in ('latest', 'unique_count') or mt.recurring);

-- latest: the last value of each period, by occurred_at (then arrival).
insert into usage.counters (organization_id, meter_key, period_start, slot, quantity, event_count, last_at)
select e.organization_id, e.meter_key, e.period, 0,
       (array_agg(e.quantity order by e.occurred_at desc, e.recorded_at desc))[1], count(*), max(e.occurred_at)
  from meter_events e join catalog.meters mt on mt.key = e.meter_key and mt.aggregation = 'latest'
 group by e.organization_id, e.meter_key, e.period;

-- unique_count: the distinct values of each period; an old event without
-- a value (a count reported as a quantity) keeps its quantity.
insert into usage.unique_values (organization_id, meter_key, period_start, value, first_event_id)
select distinct on (e.organization_id, e.meter_key, e.period, e.value) e.organization_id, e.meter_key, e.period, e.value, e.id
  from meter_events e join catalog.meters mt on mt.key = e.meter_key and mt.aggregation = 'unique_count'
 where e.value is not null and length(e.value) between 1 and 200
 order by e.organization_id, e.meter_key, e.period, e.value, e.occurred_at, e.id;
insert into usage.counters (organization_id, meter_key, period_start, slot, quantity, event_count)
select e.organization_id, e.meter_key, e.period, 0,
       count(distinct e.value) filter (where length(e.value) between 1 and 200)
         + coalesce(sum(e.quantity) filter (where e.value is null or length(e.value) not between 1 and 200), 0),
       count(*)
  from meter_events e join catalog.meters mt on mt.key = e.meter_key and mt.aggregation = 'unique_count'
 group by e.organization_id, e.meter_key, e.period;

-- recurring sum: the live total is every event's quantity; a period's
-- high mark is the highest running total (in occurred_at order) after one
-- of its events: the total at its end while events only add, as before
-- this release; after a rollback and a migrate again, events recorded in
-- between may have given units back.
insert into usage.live_counts as l (organization_id, meter_key, quantity)
select e.organization_id, e.meter_key, sum(e.quantity)
  from meter_events e join catalog.meters mt on mt.key = e.meter_key and mt.recurring
 group by e.organization_id, e.meter_key
on conflict on constraint live_counts_pkey do update set quantity = excluded.quantity, updated_at = now();
insert into usage.counters (organization_id, meter_key, period_start, slot, quantity, event_count)
select r.organization_id, r.meter_key, r.period, 0, greatest(max(r.total), 0), count(*)
  from (select e.organization_id, e.meter_key, e.period,
               sum(e.quantity) over (partition by e.organization_id, e.meter_key
                                     order by e.occurred_at, e.recorded_at, e.id rows unbounded preceding) as total
          from meter_events e join catalog.meters mt on mt.key = e.meter_key and mt.recurring) r
 group by r.organization_id, r.meter_key, r.period;
drop table meter_events;  -- a temporary table (the exported scripts may run without one transaction)
