-- 0005 catalog: meters, plan features, plans and their limits. Reference
-- tables under Citus; loaded from seeds/catalog.json by `tenantdb seed`.
{% import 'sql/macros.sql' as m with context %}

create schema catalog;
comment on schema catalog is 'tenantdb catalog: plans, features and meters (reference data).';
revoke all on schema catalog from public;
grant usage on schema catalog to authenticated, service_role;

create table catalog.meters (
  key text primary key,
  name text not null,
  unit text not null default 'unit',
  description text,
  constraint meters_key_format check (key ~ '^[a-z][a-z0-9_]*$')
);
comment on table catalog.meters is 'What usage events measure (api_call, record_created, ...); record_usage takes a meter key. Quantities are summed per period.';
{{ m.table_grants('catalog.meters', 'select') }}

create table catalog.features (
  key text primary key,
  name text not null,
  kind text not null,
  meter_key text references catalog.meters (key) on update cascade,
  counts text,
  description text,
  constraint features_key_format check (key ~ '^[a-z][a-z0-9_]*$'),
  constraint features_kind_known check (kind in ('limit', 'flags')),
  constraint features_key_kind_unique unique (key, kind),
  constraint features_counts_known check (counts is null or counts in ('seats')),
  constraint features_limit_measured check (
    (kind = 'flags' and meter_key is null and counts is null)
    or (kind = 'limit' and (meter_key is null) <> (counts is null)))
);
create index features_meter_key on catalog.features (meter_key);
comment on table catalog.features is 'Plan features: a limit measured by a meter (or by counting seats), or a set of boolean flags.';
comment on column catalog.features.counts is 'For a limit not fed by usage events: seats = active members of type member.';
{{ m.table_grants('catalog.features', 'select') }}

create table catalog.plans (
  key text primary key,
  id uuid not null default gen_random_uuid(),
  name text not null,
  price_minor bigint not null,
  currency char(3) not null,
  billing_interval text not null default 'month',
  rank integer not null default 0,
  is_active boolean not null default true,
  is_custom boolean not null default false,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint plans_id_unique unique (id),
  constraint plans_key_format check (key ~ '^[a-z][a-z0-9_]*$'),
  constraint plans_price_not_negative check (price_minor >= 0),
  constraint plans_currency_iso4217 check (currency ~ '^[A-Z]{3}$'),
  constraint plans_interval_known check (billing_interval in ('month', 'year'))
);
comment on table catalog.plans is 'Subscription plans. A plan left out of a re-seeded catalog is deactivated, never deleted, so subscriptions keep their plan.';
comment on column catalog.plans.id is 'Stable uuid of the plan, for callers that use seed 003''s plan ids.';
comment on column catalog.plans.price_minor is 'Price per interval in minor units of currency (cents).';
comment on column catalog.plans.rank is 'Order of plans: moving to a higher rank is an upgrade, to a lower one a downgrade.';
{{ m.table_grants('catalog.plans', 'select') }}

create table catalog.plan_features (
  plan_key text not null references catalog.plans (key) on update cascade on delete cascade,
  feature_key text not null,
  feature_kind text not null,
  limit_value bigint,
  overage_unit_price_minor bigint,
  flags jsonb,
  primary key (plan_key, feature_key),
  constraint plan_features_feature_fk foreign key (feature_key, feature_kind)
    references catalog.features (key, kind) on update cascade on delete cascade,
  constraint plan_features_limit_shape check (
    (feature_kind = 'limit' and limit_value is not null and limit_value >= -1 and flags is null)
    or (feature_kind = 'flags' and limit_value is null and overage_unit_price_minor is null
        and flags is not null and jsonb_typeof(flags) = 'object')),
  constraint plan_features_overage_not_negative check (overage_unit_price_minor is null or overage_unit_price_minor >= 0)
);
create index plan_features_feature on catalog.plan_features (feature_key, feature_kind);
comment on table catalog.plan_features is 'A plan''s allowance of a feature: limit_value units (-1 = unlimited) and the price of each unit over it, or flags.';
comment on column catalog.plan_features.limit_value is 'Included units per period; -1 means unlimited; 0 means none.';
comment on column catalog.plan_features.overage_unit_price_minor is 'Price of each unit over limit_value, in the plan''s currency; null = over the limit is refused, not billed.';
{{ m.table_grants('catalog.plan_features', 'select') }}
