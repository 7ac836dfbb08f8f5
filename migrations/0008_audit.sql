-- 0008 audit: platform actions, security events, impersonation, break-glass
-- and incidents. Every table is append-only (also for its owner); only
-- private.purge_audit removes rows, past the retention period, and audits
-- itself. Platform data: not distributed under Citus.
{% import 'sql/macros.sql' as m with context %}

create schema audit;
comment on schema audit is 'tenantdb audit: who did what on the platform, security events, impersonation, break-glass, incidents.';
revoke all on schema audit from public;
grant usage on schema audit to authenticated, service_role;

create table audit.impersonation_sessions (
  id uuid primary key default gen_random_uuid(),
  impersonator_id uuid not null references identity.users (id),
  target_user_id uuid not null references identity.users (id),
  reason text not null,
  started_at timestamptz not null default clock_timestamp(),
  expires_at timestamptz not null,
  constraint impersonation_sessions_not_self check (impersonator_id <> target_user_id),
  constraint impersonation_sessions_reason_given check (length(btrim(reason)) >= 5),
  constraint impersonation_sessions_bounded check (expires_at > started_at and expires_at <= started_at + interval '4 hours')
);
create index impersonation_sessions_impersonator on audit.impersonation_sessions (impersonator_id, started_at desc);
create index impersonation_sessions_target on audit.impersonation_sessions (target_user_id);
comment on table audit.impersonation_sessions is 'A platform member acting as a user for support: who, whom, why, until when (at most 4 hours). Ended early by a row in impersonation_endings.';
{{ m.table_grants('audit.impersonation_sessions', 'select') }}

create table audit.impersonation_endings (
  session_id uuid primary key references audit.impersonation_sessions (id),
  ended_at timestamptz not null default clock_timestamp(),
  ended_by uuid references identity.users (id),
  reason text
);
create index impersonation_endings_ended_by on audit.impersonation_endings (ended_by);
comment on table audit.impersonation_endings is 'The early end of an impersonation session (a session also ends at its expires_at).';
{{ m.table_grants('audit.impersonation_endings', 'select') }}

create table audit.break_glass_events (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references identity.users (id),
  grant_id uuid not null references iam.system_role_grants (id),
  reason text not null,
  activated_at timestamptz not null default clock_timestamp(),
  expires_at timestamptz not null,
  constraint break_glass_events_reason_given check (length(btrim(reason)) >= 10),
  constraint break_glass_events_bounded check (expires_at > activated_at and expires_at <= activated_at + interval '4 hours')
);
create index break_glass_events_user on audit.break_glass_events (user_id, activated_at desc);
create index break_glass_events_grant on audit.break_glass_events (grant_id);
comment on table audit.break_glass_events is 'Activation of an emergency (break-glass) role grant: who, which grant, why, until when.';
{{ m.table_grants('audit.break_glass_events', 'select') }}

create table audit.platform_actions (
  id uuid primary key default gen_random_uuid(),
  occurred_at timestamptz not null default clock_timestamp(),
  action text not null,
  actor_id uuid,
  impersonator_id uuid,
  impersonation_session_id uuid references audit.impersonation_sessions (id),
  db_role text,
  target_table text,
  target_id text,
  target_organization_id uuid,
  details jsonb not null default '{}'::jsonb,
  ip inet,
  user_agent text,
  request_id text,
  constraint platform_actions_action_format check (action ~ '^[a-z_]+(\.[a-z_]+)+$')
);
create index platform_actions_occurred on audit.platform_actions (occurred_at);
create index platform_actions_actor on audit.platform_actions (actor_id, occurred_at);
create index platform_actions_session on audit.platform_actions (impersonation_session_id);
create index platform_actions_target_org on audit.platform_actions (target_organization_id, occurred_at);
comment on table audit.platform_actions is 'One row per privileged change, written by trigger in the same transaction: the action, the acting user (and impersonator), the row changed, and the request (IP, user agent, request id from PostgREST''s request.headers).';
comment on column audit.platform_actions.actor_id is 'auth.uid() of the request: the signed-in user, or the impersonated user while impersonating. Not a foreign key: audit outlives users.';
comment on column audit.platform_actions.db_role is 'The database role of the request (the SET ROLE of PostgREST, else the session user).';
comment on column audit.platform_actions.impersonator_id is 'The platform member behind an impersonation session, if one was active.';
comment on column audit.platform_actions.ip is 'Client address as the nearest proxy saw it: the last x-forwarded-for entry (earlier entries are the client''s own claims), else x-real-ip.';
comment on column audit.platform_actions.user_agent is 'From request.headers user-agent, as the client claims it.';
comment on column audit.platform_actions.request_id is 'From request.headers x-request-id, as the client (or proxy) sent it.';
{{ m.table_grants('audit.platform_actions', 'select') }}

create table audit.security_events (
  id uuid primary key default gen_random_uuid(),
  occurred_at timestamptz not null default clock_timestamp(),
  event_type text not null,
  severity text not null,
  actor_id uuid,
  subject_user_id uuid,
  details jsonb not null default '{}'::jsonb,
  ip inet,
  user_agent text,
  request_id text,
  constraint security_events_severity_known check (severity in ('info', 'low', 'medium', 'high', 'critical')),
  constraint security_events_type_format check (event_type ~ '^[a-z_]+(\.[a-z_]+)*$')
);
create index security_events_occurred on audit.security_events (occurred_at);
create index security_events_severity on audit.security_events (severity, occurred_at);
comment on table audit.security_events is 'Security-relevant events the database sees: refused impersonation, break-glass activation, system roles granted.';
{{ m.table_grants('audit.security_events', 'select') }}

create table audit.incidents (
  id uuid primary key default gen_random_uuid(),
  opened_at timestamptz not null default clock_timestamp(),
  opened_by uuid references identity.users (id),
  title text not null,
  severity text not null,
  description text,
  constraint incidents_severity_known check (severity in ('low', 'medium', 'high', 'critical')),
  constraint incidents_title_given check (length(btrim(title)) > 0)
);
create index incidents_opened_by on audit.incidents (opened_by);
comment on table audit.incidents is 'Security and availability incidents. Status and timeline are the rows of incident_updates.';
{{ m.table_grants('audit.incidents', 'select') }}

create table audit.incident_updates (
  incident_id uuid not null references audit.incidents (id),
  seq integer not null,
  at timestamptz not null default clock_timestamp(),
  status text not null,
  note text not null,
  by_user uuid references identity.users (id),
  primary key (incident_id, seq),
  constraint incident_updates_status_known check (status in ('open', 'investigating', 'mitigated', 'resolved', 'closed'))
);
create index incident_updates_by on audit.incident_updates (by_user);
comment on table audit.incident_updates is 'An incident''s timeline; its current status is the latest row''s.';
{{ m.table_grants('audit.incident_updates', 'select') }}

-- Audit rows are written by the database only: no client role, not even
-- service_role, may insert, change or delete them.
revoke insert, update, delete, truncate on all tables in schema audit from service_role, authenticated, anon, public;
