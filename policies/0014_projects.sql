-- projects: members with tenant.read see them; project.create, .update and
-- .delete guard each write (seed 002's permissions).
{% import 'sql/macros.sql' as m with context %}
{{ m.tenant_policies('app.projects', read='tenant.read', insert='project.create', update='project.update', delete='project.delete') }}
{{ m.platform_read('app.projects', 'platform.tenant.read') }}
{{ m.tenant_policies('usage.live_counts', read='tenant.read') }}
{{ m.platform_read('usage.live_counts', 'platform.tenant.read') }}
