-- usage: every member (tenant.read) reads their organization's usage;
-- platform staff with platform.tenant.read read all. Writes go through
-- record_usage and the summarizing functions only.
{% import 'sql/macros.sql' as m with context %}
{% for t in ['events', 'idempotency_keys', 'counters', 'rollups', 'monthly_summaries', 'overage_fees', 'organization_usage'] %}
{{ m.tenant_policies('usage.' ~ t, read='tenant.read') }}
{{ m.platform_read('usage.' ~ t, 'platform.tenant.read') }}
{% endfor %}
