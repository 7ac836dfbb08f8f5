-- audit: platform staff with platform.security.view read every audit row;
-- tenants read none (their members' actions inside the product are the
-- app's business; these rows describe the platform's). The impersonated
-- user and the impersonator see their own sessions.
{% import 'sql/macros.sql' as m with context %}
{% for t in ['platform_actions', 'security_events', 'impersonation_sessions', 'impersonation_endings', 'break_glass_events', 'incidents', 'incident_updates'] %}
{{ m.rls_on('audit.' ~ t) }}
{{ m.platform_read('audit.' ~ t, 'platform.security.view') }}
{% endfor %}
{{ m.policy('audit.impersonation_sessions', 'own_select', 'select',
            using='(select auth.uid()) in (impersonator_id, target_user_id)') }}
