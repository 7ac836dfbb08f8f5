-- tenancy: members with tenant.read see their organizations and fellow
-- members; tenant.update edits an organization; invitations are seen by
-- those who may invite. Every other write goes through a function.
{% import 'sql/macros.sql' as m with context %}
{{ m.tenant_policies('tenancy.organizations', read='tenant.read', column='id') }}
{{ m.policy('tenancy.organizations', 'tenant_update', 'update',
            using=m.in_orgs_with('tenant.update', 'id'), check=m.in_orgs_with('tenant.update', 'id')) }}
{{ m.tenant_policies('tenancy.memberships', read='tenant.read') }}
{{ m.tenant_policies('tenancy.invitations', read='member.invite') }}
