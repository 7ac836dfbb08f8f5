-- Back to sums and live counts: every meter that is not a live count sums
-- its quantities per period again (its counters are recomputed from the
-- events); live_count is 'count' again. Events of zero or negative
-- quantity stay (the old check then comes back NOT VALID: it holds for new
-- rows; without such events it is validated).
create temporary table meter_events as
select e.organization_id, e.meter_key, e.quantity,
       case when exists (select from billing.settings s where s.organization_id = e.organization_id)
            then (select p.start_date from private.billing_period(e.organization_id, e.occurred_at) p)
            else date_trunc('month', e.occurred_at at time zone 'UTC')::date end as period
  from usage.events e
  join catalog.meters mt on mt.key = e.meter_key
 where mt.aggregation in ('count', 'unique_count', 'max', 'latest') or mt.recurring;
delete from usage.counters c using catalog.meters mt
 where mt.key = c.meter_key and (mt.aggregation in ('count', 'unique_count', 'max', 'latest') or mt.recurring);
insert into usage.counters (organization_id, meter_key, period_start, slot, quantity, event_count)
select e.organization_id, e.meter_key, e.period, 0, greatest(sum(e.quantity), 0), count(*)
  from meter_events e group by e.organization_id, e.meter_key, e.period;
drop table meter_events;  -- a temporary table (the exported scripts may run without one transaction)
delete from usage.live_counts l using catalog.meters mt where mt.key = l.meter_key and mt.recurring;

drop table if exists usage.unique_values;
alter table usage.counters drop column if exists last_at;
alter table usage.events drop constraint if exists events_quantity_range;
alter table usage.events add constraint events_quantity_positive check (quantity > 0) not valid;
do $validate$
begin
  -- Validated when every event passes it (always, unless this release
  -- recorded give-backs or zero gauge readings): the schema is then exactly
  -- the release before's.
  if not exists (select from usage.events e where e.quantity <= 0) then
    alter table usage.events validate constraint events_quantity_positive;
  end if;
end
$validate$;
comment on column catalog.meters.max_per_event is 'The largest quantity one usage event of this meter may carry (null: 10^12, the global bound).';
alter table catalog.meters drop constraint if exists meters_field_name_shape;
alter table catalog.meters drop constraint if exists meters_field_name_for_unique_count;
alter table catalog.meters drop column if exists field_name;
alter table catalog.meters drop constraint if exists meters_recurring_is_a_sum;
alter table catalog.meters drop column if exists recurring;
alter table catalog.meters drop constraint if exists meters_aggregation_known;
alter table catalog.meters drop constraint if exists meters_aggregation_length;
update catalog.meters set aggregation = case aggregation when 'live_count' then 'count' else 'sum' end where aggregation <> 'sum';
alter table catalog.meters add constraint meters_aggregation_known check (aggregation in ('sum', 'count'));
alter table catalog.meters add constraint meters_aggregation_length check (length(aggregation) <= 200);
comment on column catalog.meters.aggregation is 'sum: usage is the quantities of a billing period added up (api calls); count: usage is how many live things exist (projects), kept by the table''s gate_and_meter trigger; a period is billed on its highest count.';
comment on column usage.events.quantity is 'Units of the meter the event adds (> 0, at most the meter''s max_per_event).';
comment on column usage.counters.quantity is 'Units recorded in this slot for the meter and period (the total is the sum of the slots).';
