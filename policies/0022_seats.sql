-- seat peaks: members with tenant.read see their organization's (as its
-- live counts); platform staff with platform.tenant.read see all.
{% import 'sql/macros.sql' as m with context %}
{{ m.tenant_policies('usage.seat_peaks', read='tenant.read') }}
{{ m.platform_read('usage.seat_peaks', 'platform.tenant.read') }}
