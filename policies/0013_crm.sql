-- crm: organization data follows the tenant policy set: crm.read to see
-- it; crm.write for clients, settings, services and jobs; crm.billing for
-- invoices, lines and payments; crm.campaigns for campaigns. Sends and
-- reminders are written by functions only. Platform staff read it with
-- platform.tenant.read, people with platform.privacy.manage. A person's own
-- record (people, verified emails and phones, own addresses, own consents)
-- is the linked user's: its policies are in policies/0018_crm_trust.sql,
-- with those of crm.client_addresses.
{% import 'sql/macros.sql' as m with context %}
{% for t in ['people', 'person_emails', 'person_phones', 'addresses', 'marketing_consents', 'user_person_links'] %}
{{ m.rls_on('crm.' ~ t) }}
{{ m.platform_read('crm.' ~ t, 'platform.privacy.manage') }}
{% endfor %}
{{ m.personal_policies('crm.user_person_links') }}
{% for t, read, write in [('org_clients', 'crm.read', 'crm.write'), ('org_client_settings', 'crm.read', 'crm.write'),
                          ('services', 'crm.read', 'crm.write'), ('jobs', 'crm.read', 'crm.write'),
                          ('invoices', 'crm.read', 'crm.billing'), ('invoice_lines', 'crm.read', 'crm.billing'),
                          ('payments', 'crm.read', 'crm.billing'), ('campaigns', 'crm.read', 'crm.campaigns'),
                          ('campaign_sends', 'crm.campaigns', none), ('reminders', 'crm.read', none)] %}
{{ m.tenant_policies('crm.' ~ t, read=read, write=write) }}
{{ m.platform_read('crm.' ~ t, 'platform.tenant.read') }}
{% endfor %}
{{ m.rls_on('privacy.person_erasures') }}
{{ m.platform_read('privacy.person_erasures', 'platform.privacy.manage') }}
