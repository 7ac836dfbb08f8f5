-- settlement: members with billing.view read their organization's applied
-- provider events; platform staff with platform.tenant.read all of them.
-- Written only by the inbox worker's functions.
{% import 'sql/macros.sql' as m with context %}
{{ m.tenant_policies('billing.invoice_settlements', read='billing.view') }}
{{ m.platform_read('billing.invoice_settlements', 'platform.tenant.read') }}
