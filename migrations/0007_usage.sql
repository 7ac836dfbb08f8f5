-- 0007 usage: raw events (partitioned by month), idempotency keys, live
-- counters per billing period, daily and monthly rollups, monthly summaries,
-- overage fees and organization usage snapshots.
{% import 'sql/macros.sql' as m with context %}

create schema usage;
comment on schema usage is 'tenantdb usage: metering events, counters, rollups, summaries and overage fees.';
revoke all on schema usage from public;
grant usage on schema usage to authenticated, service_role;

create table usage.events (
  organization_id uuid not null references tenancy.organizations (id) on delete cascade,
  id uuid not null default gen_random_uuid(),
  meter_key text not null references catalog.meters (key) on update cascade,
  quantity bigint not null,
  idempotency_key text not null,
  occurred_at timestamptz not null,
  recorded_at timestamptz not null default now(),
  user_id uuid,
  metadata jsonb not null default '{}'::jsonb,
  primary key (organization_id, occurred_at, id),
  constraint events_quantity_positive check (quantity > 0),
  constraint events_metadata_is_object check (jsonb_typeof(metadata) = 'object')
) partition by range (occurred_at);
create index events_org_meter_time on usage.events (organization_id, meter_key, occurred_at);
create index events_meter on usage.events (meter_key);
comment on table usage.events is 'Append-only usage events, one partition per UTC month (created on demand by record_usage). Write through record_usage only.';
comment on column usage.events.meter_key is 'What was measured: a catalog.meters key (api_call, record_created, ...).';
comment on column usage.events.user_id is 'The signed-in user who recorded the event, if any; not a foreign key (events are never changed).';
comment on column usage.events.idempotency_key is 'The caller''s key for this event; accepted once per organization forever (usage.idempotency_keys).';
{{ m.table_grants('usage.events', 'select') }}

create table usage.idempotency_keys (
  organization_id uuid not null references tenancy.organizations (id) on delete cascade,
  idempotency_key text not null,
  event_id uuid not null,
  occurred_at timestamptz not null,
  created_at timestamptz not null default now(),
  primary key (organization_id, idempotency_key)
);
comment on table usage.idempotency_keys is 'Every usage idempotency key ever accepted, per organization (the partitioned events table cannot hold a unique key across months).';
{{ m.table_grants('usage.idempotency_keys', 'select') }}

create table usage.counters (
  organization_id uuid not null references tenancy.organizations (id) on delete cascade,
  meter_key text not null references catalog.meters (key) on update cascade,
  period_start date not null,
  slot smallint not null default 0,
  quantity bigint not null default 0,
  event_count bigint not null default 0,
  updated_at timestamptz not null default now(),
  primary key (organization_id, meter_key, period_start, slot),
  constraint counters_not_negative check (quantity >= 0 and event_count >= 0),
  constraint counters_slot_range check (slot between 0 and 15)
);
create index counters_meter on usage.counters (meter_key);
comment on table usage.counters is 'Live totals per organization, meter and billing period (sum over slot), updated in the transaction of each event: exact at commit.';
comment on column usage.counters.slot is 'Counters are split in up to 16 slots (by writing session) so that concurrent events of one organization do not queue on one row; the total is the sum of the slots.';
comment on column usage.counters.period_start is 'First day of the organization''s billing period (its anchor day, in its time zone).';
{{ m.table_grants('usage.counters', 'select') }}

create table usage.rollups (
  organization_id uuid not null references tenancy.organizations (id) on delete cascade,
  meter_key text not null references catalog.meters (key) on update cascade,
  period_type text not null,
  period_start date not null,
  quantity bigint not null,
  event_count bigint not null,
  updated_at timestamptz not null default now(),
  primary key (organization_id, meter_key, period_type, period_start),
  constraint rollups_period_type_known check (period_type in ('daily', 'monthly'))
);
create index rollups_meter on usage.rollups (meter_key);
comment on table usage.rollups is 'Daily and monthly (UTC) totals written by aggregate_usage; re-running a range rewrites the same values.';
{{ m.table_grants('usage.rollups', 'select') }}

create table usage.monthly_summaries (
  organization_id uuid not null references tenancy.organizations (id) on delete cascade,
  feature_key text not null references catalog.features (key) on update cascade,
  period_start date not null,
  period_end date not null,
  plan_key text not null references catalog.plans (key) on update cascade,
  units_used bigint not null,
  limit_value bigint not null,
  updated_at timestamptz not null default now(),
  primary key (organization_id, feature_key, period_start),
  constraint monthly_summaries_limit_range check (limit_value >= -1),
  constraint monthly_summaries_used_not_negative check (units_used >= 0)
);
create index monthly_summaries_feature on usage.monthly_summaries (feature_key);
create index monthly_summaries_plan on usage.monthly_summaries (plan_key);
comment on table usage.monthly_summaries is 'Per billing period and limited feature: units used against the plan''s limit (-1 = unlimited).';
{{ m.table_grants('usage.monthly_summaries', 'select') }}

create table usage.overage_fees (
  organization_id uuid not null references tenancy.organizations (id) on delete cascade,
  feature_key text not null references catalog.features (key) on update cascade,
  period_start date not null,
  units_over bigint not null,
  unit_price_minor bigint not null,
  amount_minor bigint not null,
  currency char(3) not null,
  updated_at timestamptz not null default now(),
  primary key (organization_id, feature_key, period_start),
  constraint overage_fees_positive check (units_over > 0 and unit_price_minor >= 0),
  constraint overage_fees_amount_is_product check (amount_minor = units_over * unit_price_minor),
  constraint overage_fees_currency_iso4217 check (currency ~ '^[A-Z]{3}$')
);
create index overage_fees_feature on usage.overage_fees (feature_key);
comment on table usage.overage_fees is 'Units over the plan''s included units times the overage unit price (seed 002), per billing period; billed by generate_invoice.';
{{ m.table_grants('usage.overage_fees', 'select') }}

create table usage.organization_usage (
  organization_id uuid not null references tenancy.organizations (id) on delete cascade,
  id uuid not null default gen_random_uuid(),
  period_start date not null,
  period_end date not null,
  plan_key text references catalog.plans (key) on update cascade,
  usage jsonb not null default '{}'::jsonb,
  seats_count integer not null default 0,
  has_exceeded_limits boolean not null default false,
  exceeded_limits_details jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (organization_id, id),
  constraint organization_usage_one_per_period unique (organization_id, period_start)
);
create index organization_usage_plan on usage.organization_usage (plan_key);
create index organization_usage_exceeded on usage.organization_usage (organization_id) where has_exceeded_limits;
comment on table usage.organization_usage is 'Seed 003: a snapshot of an organization''s usage against its limits for one period (record_organization_usage).';
comment on column usage.organization_usage.exceeded_limits_details is '{feature: {limit, actual, exceeded_by}} for each limit exceeded.';
{{ m.table_grants('usage.organization_usage', 'select') }}
