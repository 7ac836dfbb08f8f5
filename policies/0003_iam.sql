-- iam: the role catalog is readable by every signed-in user; a grant is
-- seen by its holder and by platform staff with platform.security.view.
{% import 'sql/macros.sql' as m with context %}
{{ m.catalog_policies('iam.roles') }}
{{ m.catalog_policies('iam.permissions') }}
{{ m.catalog_policies('iam.role_permissions') }}
{{ m.personal_policies('iam.system_role_grants') }}
{{ m.platform_read('iam.system_role_grants', 'platform.security.view') }}
