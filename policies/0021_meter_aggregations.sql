-- meter aggregations: every member (tenant.read) reads the distinct values
-- their organization's unique_count meters have seen; record_usage writes.
{% import 'sql/macros.sql' as m with context %}
{{ m.tenant_policies('usage.unique_values', read='tenant.read') }}
{{ m.platform_read('usage.unique_values', 'platform.tenant.read') }}
