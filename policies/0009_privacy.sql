-- privacy: users see their own consents and requests; privacy staff
-- (platform.privacy.manage) see all; the inventory is public to signed-in
-- users (it is the Art. 30 record); erasures are for staff.
{% import 'sql/macros.sql' as m with context %}
{{ m.personal_policies('privacy.consents') }}
{{ m.platform_read('privacy.consents', 'platform.privacy.manage') }}
{{ m.personal_policies('privacy.subject_requests') }}
{{ m.platform_read('privacy.subject_requests', 'platform.privacy.manage') }}
{{ m.catalog_policies('privacy.data_inventory') }}
{{ m.rls_on('privacy.erasures') }}
{{ m.platform_read('privacy.erasures', 'platform.privacy.manage') }}
