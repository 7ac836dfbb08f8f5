-- 0015 seed contract (issue 9): what the design documents' own SQL needs.
--   * catalog.meter_aliases: other names a meter answers to (seed 000's
--     'api_calls' for our api_call); record_usage resolves a meter key, an
--     alias or a feature key (a feature names its meter); no name may mean
--     two things (functions/0015).
--   * catalog.plan_features.updated_at (seed 001), stamped like plans.
--   * anon reads the public, active catalog (seed 001: "plan features
--     publicly readable", a pricing page with the anon key).
--   * billing.subscription_history carries the plans' ids and the provider's
--     subscription id (seed 003's old_plan_id, new_plan_id,
--     stripe_subscription_id), kept from the keys by a trigger.
--   * billing.one_off_payments.metadata (seed 000's billing_records).
--   * usage.organization_usage.period_end is the last day of the period
--     (seed 003's example: 2025-11-01 .. 2025-11-30).
--   * organization_usage_summary becomes seed 003's wide view, a column per
--     meter and limit, rebuilt from the catalog (functions/0015); the
--     per-feature rows are organization_feature_usage (functions/0007).
{% import 'sql/macros.sql' as m with context %}

create table catalog.meter_aliases (
  alias text primary key,
  meter_key text not null references catalog.meters (key) on update cascade on delete cascade,
  created_at timestamptz not null default now(),
  constraint meter_aliases_alias_format check (alias ~ '^[a-z][a-z0-9_]*$'),
  constraint meter_aliases_alias_length check (length(alias) <= 200),
  constraint meter_aliases_meter_key_length check (length(meter_key) <= 200)
);
create index meter_aliases_meter on catalog.meter_aliases (meter_key);
comment on table catalog.meter_aliases is 'Other names a meter answers to in record_usage (a design document''s or an older client''s name, such as seed 000''s api_calls). An alias may not be a meter or feature key: the alias_not_a_key trigger refuses it.';
comment on column catalog.meter_aliases.alias is 'The other name; usage recorded under it is stored under meter_key.';
{{ m.table_grants('catalog.meter_aliases', 'select') }}

alter table catalog.plan_features add column updated_at timestamptz not null default now();
comment on column catalog.plan_features.updated_at is 'When the row last changed (set by the set_updated_at trigger).';

-- anon: the pricing page. Which rows it sees is the policies' business
-- (policies/0015): active plans that are not custom, and their features.
grant usage on schema catalog to anon;
grant select on catalog.plans, catalog.plan_features, catalog.features to anon;

alter table billing.subscription_history
  add column old_plan_id uuid references catalog.plans (id),
  add column new_plan_id uuid references catalog.plans (id),
  add column stripe_subscription_id text,
  add constraint subscription_history_stripe_subscription_id_length check (length(stripe_subscription_id) <= 200);
create index subscription_history_old_plan_id on billing.subscription_history (old_plan_id);
create index subscription_history_new_plan_id on billing.subscription_history (new_plan_id);
comment on column billing.subscription_history.old_plan_id is 'catalog.plans.id of old_plan_key (seed 003 joins plans by id); kept in step with the key by a trigger.';
comment on column billing.subscription_history.new_plan_id is 'catalog.plans.id of new_plan_key; kept in step with the key by a trigger.';
comment on column billing.subscription_history.stripe_subscription_id is 'The payment provider''s subscription id at the time of the change (seed 003''s name; any provider).';
comment on column billing.subscription_history.provider_event_id is 'The provider event that caused the change (seed 003''s stripe_event_id).';

-- History is append-only: the new columns are filled for the rows written
-- before this release with the trigger off.
alter table billing.subscription_history disable trigger append_only;
update billing.subscription_history h
   set old_plan_id = (select p.id from catalog.plans p where p.key = h.old_plan_key),
       new_plan_id = (select p.id from catalog.plans p where p.key = h.new_plan_key),
       stripe_subscription_id = (select s.provider_subscription_id from billing.subscriptions s
                                  where s.organization_id = h.organization_id and s.id = h.subscription_id);
alter table billing.subscription_history enable trigger append_only;

alter table billing.one_off_payments add column metadata jsonb not null default '{}';
alter table billing.one_off_payments
  add constraint one_off_payments_metadata_length check (pg_column_size(metadata) <= 65536),
  add constraint one_off_payments_metadata_is_object check (jsonb_typeof(metadata) = 'object');
comment on column billing.one_off_payments.metadata is 'What the caller attached to the payment (seed 000''s billing_records.metadata: plan, billing period, provider ids). Not personal data: do not put names or addresses here.';

-- period_end: the last day of the period, no longer the next period's first.
-- Each stored period keeps its length (the billing calendar may have changed since).
update usage.organization_usage set period_end = period_end - 1;
alter table usage.organization_usage
  add constraint organization_usage_period_end_inclusive check (period_end >= period_start);
comment on column usage.organization_usage.period_end is 'The last day of the billing period (inclusive, as seed 003 shows: 2025-11-30); queries use [period_start, period_end + 1).';

-- The per-feature view is organization_feature_usage now (functions/0007);
-- the wide organization_usage_summary is built by functions/0015.
drop view if exists {{ api }}.organization_usage_summary;
