{#-
  Shared shapes of the tenantdb schema: one macro per idea.
  Every SQL file is rendered by jinja2 with these imported as `m`; an app
  project imports them as 'tenantdb/macros.sql'. The public ones, marked
  (public), are a versioned API for app SQL, documented with their
  parameters in docs/macros.md: api_version below. The (internal) ones
  are the package's own and may change in any release.
-#}

{#- api_version: the version of the public macros (docs/macros.md). Within
    one version a public macro keeps its parameters and renders the same
    SQL for the same arguments (an app's applied migration keeps its
    checksum); a new version is announced in the release notes.
    tests/fixtures/macros_api_v<N>.json pins what each public macro renders
    in version N: a change to a public macro's output or parameters bumps
    it (a new public macro, or a new last parameter whose default renders
    as before, does not). -#}
{% set api_version = 1 %}

{#- updated_at (public): the trigger that stamps updated_at on every UPDATE. -#}
{% macro updated_at(table) -%}
drop trigger if exists set_updated_at on {{ table }};
create trigger set_updated_at
  before update on {{ table }}
  for each row execute function private.set_updated_at();
{%- endmacro %}

{#- table_grants (public): the privileges of a table that holds tenant or
    personal data. RLS decides which rows; anon and PUBLIC get nothing. -#}
{% macro table_grants(table, authenticated='select, insert, update, delete') -%}
revoke all on table {{ table }} from public, anon, authenticated;
{%- if authenticated %}
grant {{ authenticated }} on table {{ table }} to authenticated;
{%- endif %}
grant select, insert, update, delete on table {{ table }} to service_role;
{%- endmacro %}

{#- rls_on (public): row-level security enabled and forced (also for the
    owner). -#}
{% macro rls_on(table) -%}
alter table {{ table }} enable row level security;
alter table {{ table }} force row level security;
{%- endmacro %}

{#- policy (public): drop-and-create one policy, so a policies/ file can be
    re-applied. One permissive policy per role and command (verify refuses
    two): Postgres ORs permissive policies, and an OR of an organization
    filter with anything else is a sequential scan. -#}
{% macro policy(table, name, command, using=none, check=none, role='authenticated, organization_scoped', kind='permissive') -%}
drop policy if exists {{ name }} on {{ table }};
create policy {{ name }} on {{ table }}
  as {{ kind }} for {{ command }} to {{ role }}
  {%- if using %} using ({{ using }}){% endif %}
  {%- if check %} with check ({{ check }}){% endif %};
{%- endmacro %}

{#- in_orgs_with (internal): the row's organization is one where the caller
    holds the permission. The sub-select makes the permission lookup an
    InitPlan: it runs once per statement, not once per row. -#}
{% macro in_orgs_with(permission, column='organization_id') -%}
{{ column }} = any ((select private.org_ids_with_permission('{{ permission }}'))::uuid[])
{%- endmacro %}

{#- in_active_org_with (internal): the row's organization is the request's
    active one and the caller holds the permission there
    (org_ids_with_permission answers a scoped request with that organization
    or none). An equality with a one-time InitPlan: a list page reads the
    (organization_id, ...) index in order and stops at the page. -#}
{% macro in_active_org_with(permission, column='organization_id') -%}
{{ column }} = (select (private.org_ids_with_permission('{{ permission }}'))[1])
{%- endmacro %}

{#- tenant_policies (public): the RLS policy set of a tenant table.
    read: permission needed to see rows; write: permission needed to insert,
    update and delete them (none = writes only through functions); insert,
    update, delete: a permission of its own for that command (default:
    write; a command with neither has no policy: members do not do it).
    Two sets: tenant_* for authenticated (the caller's
    organizations, = any), scoped_* for organization_scoped (a request
    scoped to its active organization: that organization, an equality). -#}
{% macro tenant_policies(table, read, write=none, column='organization_id', insert=none, update=none, delete=none) -%}
{{ rls_on(table) }}
{{ policy(table, 'tenant_select', 'select', using=in_orgs_with(read, column), role='authenticated') }}
{{ policy(table, 'scoped_select', 'select', using=in_active_org_with(read, column), role='organization_scoped') }}
{%- for role, prefix, match in [('authenticated', 'tenant_', in_orgs_with), ('organization_scoped', 'scoped_', in_active_org_with)] %}
{%- for command, permission in [('insert', insert or write), ('update', update or write), ('delete', delete or write)] %}
{%- if not permission %}
drop policy if exists {{ prefix ~ command }} on {{ table }};
{%- elif command == 'insert' %}
{{ policy(table, prefix ~ command, command, check=match(permission, column), role=role) }}
{%- elif command == 'update' %}
{{ policy(table, prefix ~ command, command, using=match(permission, column), check=match(permission, column), role=role) }}
{%- else %}
{{ policy(table, prefix ~ command, command, using=match(permission, column), role=role) }}
{%- endif %}
{%- endfor %}
{%- endfor %}
{%- endmacro %}

{#- personal_policies (public): rows that belong to one user, seen (and, with
    writable, updated) by that user only. -#}
{% macro personal_policies(table, column='user_id', writable=false) -%}
{{ rls_on(table) }}
{{ policy(table, 'owner_select', 'select', using=column ~ ' = (select auth.uid())') }}
{%- if writable %}
{{ policy(table, 'owner_update', 'update', using=column ~ ' = (select auth.uid())', check=column ~ ' = (select auth.uid())') }}
{%- else %}
drop policy if exists owner_update on {{ table }};
{%- endif %}
{%- endmacro %}

{#- linked_person_policies (internal): a CRM person's own record (people,
    verified identifiers, own addresses, own consents): seen by the users
    linked to the person and by nobody else — no organization, whatever it
    serves. The linked people are an InitPlan (index on the person column);
    or: an organization-owned part of the same table, seen with crm.read
    there (marketing_consents: each organization its own records; a request
    scoped to its active organization: that organization's, as
    org_ids_with_permission answers it). Written only by functions. -#}
{% macro linked_person_policies(table, column='person_id', own=none, or_orgs=none) -%}
{%- set linked = column ~ ' = any (array(select l.person_id from crm.user_person_links l where l.user_id = (select auth.uid())))' %}
{%- set mine = '(' ~ linked ~ ' and ' ~ own ~ ')' if own else linked %}
{{ rls_on(table) }}
{{ policy(table, 'person_select', 'select', using=(mine ~ ' or ' ~ in_orgs_with('crm.read', or_orgs)) if or_orgs else mine) }}
{%- endmacro %}

{#- platform_read (public): platform staff holding a platform permission
    read every row, through the database role platform_staff (the role a
    staff token names), never through authenticated: tenant and platform
    permissions are not unioned, and no tenant read pays for the platform
    check. The sub-select is an InitPlan: a one-time filter, so the staff
    member's own WHERE clause keeps its index. -#}
{% macro platform_read(table, permission) -%}
grant usage on schema {{ table.split('.')[0] }} to platform_staff;
grant select on table {{ table }} to platform_staff;
{{ policy(table, 'platform_select', 'select', using="(select private.has_system_permission('" ~ permission ~ "'))", role='platform_staff') }}
{%- endmacro %}

{#- catalog_policies (internal): reference data every signed-in user may
    read; written only by the migration role and service_role. -#}
{% macro catalog_policies(table) -%}
{{ rls_on(table) }}
{{ policy(table, 'catalog_select', 'select', using='true') }}
{%- endmacro %}

{#- metered (public): a tenant table whose rows are counted against a plan
    limit and metered. A deferred constraint trigger, so the check is made
    at commit under a per-organization lock: feature is the catalog feature
    whose limit applies; its meter (aggregation 'live_count') counts the
    rows. -#}
{% macro metered(table, feature) -%}
drop trigger if exists gate_and_meter on {{ table }};
create constraint trigger gate_and_meter
  after insert or delete or update of organization_id on {{ table }}
  deferrable initially deferred
  for each row execute function private.gate_and_meter('{{ feature }}');
{%- endmacro %}

{#- status_transitions (public): the state machine of a table's status column;
    moves: the allowed (from, to) pairs. Any other change is refused (23514,
    <table>_status_transition). -#}
{% macro status_transitions(table, moves) -%}
drop trigger if exists status_transition on {{ table }};
create trigger status_transition
  before update of status on {{ table }}
  for each row
  when (old.status is distinct from new.status)
  execute function private.status_transition({% for a, b in moves %}'{{ a }}>{{ b }}'{{ ', ' if not loop.last }}{% endfor %});
{%- endmacro %}

{#- append_only (public): UPDATE and DELETE refused on the table, also for
    its owner (triggers bind every role; TRUNCATE is not granted to any
    client). -#}
{% macro append_only(table) -%}
drop trigger if exists append_only on {{ table }};
create trigger append_only
  before update or delete on {{ table }}
  for each row execute function private.refuse_change();
{%- endmacro %}

{#- audited (public): "no platform action without an audit row". An AFTER row
    trigger on a privileged table writes audit.platform_actions in the same
    transaction; `when` narrows it to the rows that are privileged actions. -#}
{% macro audited(table, action, events='insert or update or delete', when=none, name='audit_platform_action') -%}
drop trigger if exists {{ name }} on {{ table }};
create trigger {{ name }}
  after {{ events }} on {{ table }}
  for each row
  {%- if when %} when ({{ when }}){% endif %}
  execute function private.audit_platform_action('{{ action }}');
{%- endmacro %}

{#- api_function (public): a SECURITY INVOKER function in the API schema
    that calls its SECURITY DEFINER twin in private. args: the argument list
    with defaults; call: the arguments passed on. stable: the function only
    reads (its twin is STABLE): PostgREST runs a POST of it read-only too,
    and it works on a read replica (tests/test_standby.py calls every STABLE
    API function on a hot standby, and every other one must refuse there:
    docs/operations.md, Read replicas). cached: the wrapper is PL/pgSQL,
    which keeps its plan for the session; PostgreSQL before 18 plans a SQL
    function's body again at every call (about 50 µs on 15 for
    record_usage): the hot paths (usage, the feature gate) use it. -#}
{% macro api_function(name, args, returns, call, comment, stable=false, cached=false) -%}
{%- set rows = returns.startswith('table') or returns.startswith('setof') %}
create or replace function {{ api }}.{{ name }}({{ args }})
  returns {{ returns }}
  {%- if cached %}
  language plpgsql
  {%- else %}
  language sql
  {%- endif %}
  {%- if stable %}
  stable
  {%- endif %}
  security invoker
  {{ pinned() }}
{%- if cached %}
as $fn$ begin {% if rows %}return query select * from{% else %}return{% endif %} private.{{ name }}({{ call }}); end $fn$;
{%- else %}
as $fn$ select {% if rows %}* from {% endif %}private.{{ name }}({{ call }}) $fn$;
{%- endif %}
comment on function {{ api }}.{{ name }} is {{ comment | sqlquote }};
revoke all on function {{ api }}.{{ name }} from public, anon;
grant execute on function {{ api }}.{{ name }} to authenticated, service_role;
{%- endmacro %}

{#- view_grants (public): an API view is read by authenticated and
    service_role, and by nobody else, whatever default privileges the
    database has (Supabase grants ALL on new tables and views in public to
    anon, authenticated and service_role). -#}
{% macro view_grants(view) -%}
revoke all on {{ view }} from public, anon, authenticated, service_role;
grant select on {{ view }} to authenticated, service_role;
{%- endmacro %}

{#- row_trigger (public): a row trigger and its trigger function, which no
    client may execute (a trigger fires whatever its function's grants).
    `when` is the timing and events: 'before insert', 'after update of
    status', 'instead of insert or update or delete' (what makes a view
    writable). -#}
{% macro row_trigger(table, name, when, function) -%}
revoke all on function {{ function }} from public, anon, authenticated, service_role;
drop trigger if exists {{ name }} on {{ table }};
create trigger {{ name }}
  {{ when }} on {{ table }}
  for each row execute function {{ function }}();
{%- endmacro %}

{#- pinned (public): the search_path every function runs with. pg_temp is named,
    and last: with search_path = '' Postgres would still look up types and
    tables in the caller's pg_temp first. -#}
{% macro pinned() -%}
set search_path = pg_catalog, pg_temp
{%- endmacro %}

{#- definer (public): the header lines of every SECURITY DEFINER function (in
    private only; verify checks both). -#}
{% macro definer() -%}
security definer
  {{ pinned() }}
{%- endmacro %}

{#- private_grants (public): who may execute a private function: exactly
    roles (a re-applied file takes back what an older release granted). -#}
{% macro private_grants(name, roles='authenticated, service_role') -%}
revoke all on function private.{{ name }} from public, anon, authenticated, platform_staff, service_role;
grant execute on function private.{{ name }} to {{ roles }};
{%- endmacro %}

{#- schema_list (internal) and domain_schemas: the schemas whose tables hold
    tenant, personal or catalog data: verify's checks and the isolation
    tests read this list. client_services (seed 000's compatibility views,
    no tables) is listed so that verify checks its views too. -#}
{% set domain_schemas = ['identity', 'tenancy', 'iam', 'catalog', 'billing', 'usage', 'audit', 'privacy', 'crm', 'app', 'client_services'] %}
{#- An app project's schemas (tenantdb.toml: app.schemas) are checked too. -#}
{% set domain_schemas = domain_schemas + ((app_schemas if app_schemas is defined else []) | reject('in', domain_schemas) | list) %}
{% macro schema_list() -%}
{% for s in domain_schemas %}'{{ s }}'{{ ', ' if not loop.last }}{% endfor %}
{%- endmacro %}
