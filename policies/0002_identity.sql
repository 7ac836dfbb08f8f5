-- identity: a profile is seen and edited by its user only.
{% import 'sql/macros.sql' as m with context %}
{{ m.personal_policies('identity.users', column='id', writable=true) }}
{{ m.catalog_policies('identity.reserved_usernames') }}
{% if target == 'postgres' %}
{{ m.personal_policies('identity.sessions') }}
{{ m.personal_policies('identity.accounts') }}
{{ m.rls_on('identity.verifications') }}
{% endif %}
