-- crm trust: a person's own record is the linked user's, and an
-- organization's record of its client is that organization's.
--   * people, person_emails and person_phones (verified ones only),
--     addresses: the users linked to the person, nobody else;
--   * marketing_consents: the person's own decisions to the linked users,
--     an organization's records to that organization (crm.read) — never
--     another organization's, nor which of its staff recorded one;
--   * client_addresses: the tenant policy set (crm.read, crm.write).
{% import 'sql/macros.sql' as m with context %}
{{ m.linked_person_policies('crm.people', column='id') }}
{% for t in ['person_emails', 'person_phones'] %}
{{ m.linked_person_policies('crm.' ~ t, own='verified_at is not null') }}
{% endfor %}
{{ m.linked_person_policies('crm.addresses') }}
{{ m.linked_person_policies('crm.marketing_consents', own="source = 'person'", or_orgs='recorded_by_organization_id') }}
{{ m.tenant_policies('crm.client_addresses', read='crm.read', write='crm.write') }}
{{ m.platform_read('crm.client_addresses', 'platform.tenant.read') }}
