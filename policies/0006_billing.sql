-- billing: members with billing.view read their organization's billing;
-- platform staff with
-- platform.tenant.read read everything. Every other write goes through a
-- function. The inbox is for the back end only.
{% import 'sql/macros.sql' as m with context %}
{% for t in ['settings', 'credit_balances', 'payment_customers', 'subscriptions', 'subscription_history', 'one_off_payments', 'credit_ledger',
             'invoices', 'invoice_lines', 'connected_accounts', 'platform_revenue'] %}
{{ m.tenant_policies('billing.' ~ t, read='billing.view') }}
{{ m.platform_read('billing.' ~ t, 'platform.tenant.read') }}
{% endfor %}
{% for t in ['payment_events', 'payment_event_processing', 'payment_event_attempts'] %}
{{ m.rls_on('billing.' ~ t) }}
{% endfor %}
