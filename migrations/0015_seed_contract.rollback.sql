-- Reverts 0015; the engine then drops the functions of functions/0015 with
-- their triggers. record_usage and load_catalog (functions/0007, 0005)
-- work without meter_aliases: they look for it before they use it.
drop view if exists {{ api }}.organization_usage_summary;
create view {{ api }}.organization_usage_summary with (security_invoker = true) as
  select * from {{ api }}.organization_feature_usage;
revoke all on {{ api }}.organization_usage_summary from public, anon, authenticated, service_role;
grant select on {{ api }}.organization_usage_summary to authenticated, service_role;
alter table usage.organization_usage drop constraint if exists organization_usage_period_end_inclusive;
update usage.organization_usage set period_end = period_end + 1;
alter table billing.one_off_payments drop column if exists metadata;
alter table billing.subscription_history drop column if exists stripe_subscription_id;
alter table billing.subscription_history drop column if exists new_plan_id;
alter table billing.subscription_history drop column if exists old_plan_id;
drop policy if exists anon_public_plans on catalog.plans;
drop policy if exists anon_public_plan_features on catalog.plan_features;
drop policy if exists anon_public_features on catalog.features;
revoke select on catalog.plans, catalog.plan_features, catalog.features from anon;
revoke usage on schema catalog from anon;
drop trigger if exists set_updated_at on catalog.plan_features;
drop trigger if exists set_updated_at on usage.rollups;
drop trigger if exists subscription_history_plan_ids on billing.subscription_history;
alter table catalog.plan_features drop column if exists updated_at;
drop table if exists catalog.meter_aliases;
