-- audit: request context, the audit trigger, impersonation, break-glass,
-- security events, incidents, retention.
{% import 'sql/macros.sql' as m with context %}

-- private.request_context() -> table (ip inet, user_agent text, request_id text)
-- The client address, user agent and request id PostgREST puts in the
-- request.headers setting (nulls outside a request). Refuses nothing.
create or replace function private.request_context()
  returns table (ip inet, user_agent text, request_id text)
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
declare
  headers jsonb;
  addr text;
begin
  begin
    headers := nullif(current_setting('request.headers', true), '')::jsonb;
  exception when others then
    headers := null;
  end;
  -- The last x-forwarded-for entry is the one the nearest proxy added; the
  -- ones before it are whatever the client sent.
  addr := btrim(coalesce((regexp_split_to_array(headers ->> 'x-forwarded-for', ','))[
                            array_length(regexp_split_to_array(headers ->> 'x-forwarded-for', ','), 1)],
                         headers ->> 'x-real-ip', ''));
  begin
    ip := nullif(addr, '')::inet;
  exception when others then
    ip := null;  -- a malformed header must not stop the audit
  end;
  user_agent := left(headers ->> 'user-agent', 500);
  request_id := left(headers ->> 'x-request-id', 200);
  return next;
end
$fn$;
comment on function private.request_context is 'IP, user agent and request id from PostgREST''s request.headers.';
revoke all on function private.request_context from public, anon, authenticated;

-- private.current_impersonation() -> table (session_id uuid, impersonator_id uuid)
-- The impersonation session named by the request's JWT claim
-- impersonation_session (set by the back end while a platform member acts
-- as the user), or no row. Refuses (42501) a claim naming a session that
-- is not active for the signed-in user: ended, expired or someone else's.
create or replace function private.current_impersonation()
  returns table (session_id uuid, impersonator_id uuid)
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
declare
  claimed text := auth.jwt() ->> 'impersonation_session';
begin
  if claimed is null then
    return;
  end if;
  return query
    select s.id, s.impersonator_id from audit.impersonation_sessions s
     where s.id::text = claimed and s.target_user_id = auth.uid() and s.expires_at > now()
       and not exists (select from audit.impersonation_endings e where e.session_id = s.id);
  if not found then
    raise exception 'impersonation session % is not active', claimed
      using errcode = '42501', hint = 'It ended or expired: start a new one.';
  end if;
end
$fn$;
comment on function private.current_impersonation is 'The active impersonation session of the request, from the impersonation_session claim; 42501 when it is not active.';
{{ m.private_grants('current_impersonation', 'service_role') }}

-- private.audit_platform_action() -> trigger
-- AFTER row trigger on privileged tables (macro audited): writes
-- audit.platform_actions with the action <argument>.<operation>, the
-- acting user and impersonator, the row (before and after) and the request
-- context, in the same transaction. Refuses (42501) a change made under an
-- impersonation session that is no longer active.
create or replace function private.audit_platform_action()
  returns trigger
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  row_new jsonb := case when tg_op <> 'DELETE' then to_jsonb(new) end;
  row_old jsonb := case when tg_op <> 'INSERT' then to_jsonb(old) end;
  row_any jsonb := coalesce(row_new, row_old);
  imp record;
  ctx record;
begin
  if tg_table_name = 'impersonation_endings' then
    -- Ending a session is allowed from inside it: attribute, do not validate.
    select s.id as session_id, s.impersonator_id into imp from audit.impersonation_sessions s
     where s.id::text = auth.jwt() ->> 'impersonation_session';
  else
    select * into imp from private.current_impersonation();
  end if;
  select * into ctx from private.request_context();
  insert into audit.platform_actions (action, actor_id, impersonator_id, impersonation_session_id, db_role, target_table, target_id,
                                      target_organization_id, details, ip, user_agent, request_id)
  values (tg_argv[0] || '.' || lower(tg_op), auth.uid(), imp.impersonator_id, imp.session_id,
          coalesce(nullif(current_setting('role'), 'none'), session_user),
          tg_table_schema || '.' || tg_table_name,
          coalesce(row_any ->> 'id', row_any ->> 'key', row_any ->> 'session_id', row_any ->> 'user_id',
                   nullif(concat_ws('/', row_any ->> 'plan_key', row_any ->> 'feature_key'), '')),
          coalesce((row_any ->> 'organization_id')::uuid,
                   case when tg_table_schema = 'tenancy' and tg_table_name = 'organizations' then (row_any ->> 'id')::uuid end),
          jsonb_strip_nulls(jsonb_build_object('old', row_old, 'new', row_new)),
          ctx.ip, ctx.user_agent, ctx.request_id);
  return null;
end
$fn$;
comment on function private.audit_platform_action is 'Trigger: the audit row of a privileged change, in the same transaction (no platform action without an audit row).';
revoke all on function private.audit_platform_action from public, anon, authenticated;

-- private.record_security_event(event_type text, severity text, subject_user_id uuid, details jsonb) -> uuid
-- Appends a security event with the request context. Internal (definer
-- functions call it); refuses nothing beyond the table's constraints.
create or replace function private.record_security_event(event_type text, severity text, subject_user_id uuid, details jsonb)
  returns uuid
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  ctx record;
  new_id uuid;
begin
  select * into ctx from private.request_context();
  insert into audit.security_events (event_type, severity, actor_id, subject_user_id, details, ip, user_agent, request_id)
  values (event_type, severity, auth.uid(), subject_user_id, coalesce(details, '{}'), ctx.ip, ctx.user_agent, ctx.request_id)
  returning id into new_id;
  return new_id;
end
$fn$;
comment on function private.record_security_event is 'Internal: appends a security event with the request context.';
revoke all on function private.record_security_event from public, anon, authenticated;

-- private.audit_append_only() -> trigger
-- BEFORE UPDATE OR DELETE on every audit table: refuses (55000,
-- <table>_append_only), also for the table owner. The one exception is a
-- DELETE by purge_audit, which marks its transaction.
create or replace function private.audit_append_only()
  returns trigger
  language plpgsql
  {{ m.pinned() }}
as $fn$
begin
  -- purge_audit runs as the tables' owner and marks its transaction; a
  -- client setting the same mark is not the owner.
  if tg_op = 'DELETE' and current_setting('tenantdb.audit_purge', true) = 'on'
     and current_user = (select pg_catalog.pg_get_userbyid(c.relowner) from pg_catalog.pg_class c where c.oid = tg_relid) then
    return old;
  end if;
  raise exception '%.% is append-only: % refused', tg_table_schema, tg_table_name, lower(tg_op)
    using errcode = '55000', constraint = tg_table_name || '_append_only',
          hint = 'Audit rows are kept; only purge_audit removes rows past the retention period.';
  return null;
end
$fn$;
comment on function private.audit_append_only is 'Trigger: audit tables refuse UPDATE and DELETE (55000), except purge_audit''s deletes.';
revoke all on function private.audit_append_only from public, anon, authenticated;
{% for t in ['platform_actions', 'security_events', 'impersonation_sessions', 'impersonation_endings', 'break_glass_events', 'incidents', 'incident_updates'] %}
drop trigger if exists append_only on audit.{{ t }};
create trigger append_only
  before update or delete on audit.{{ t }}
  for each row execute function private.audit_append_only();
drop trigger if exists append_only_truncate on audit.{{ t }};
create trigger append_only_truncate
  before truncate on audit.{{ t }}
  for each statement execute function private.audit_append_only();
{% endfor %}

-- private.purge_audit(older_than timestamptz) -> bigint
-- The documented retention: deletes platform actions and security events
-- that occurred before older_than, which must be at least 2 years ago, and
-- records the purge itself as a platform action. Returns rows deleted.
-- Refuses: not trusted and no platform.system.configure (42501); a cut-off
-- inside the retention period (22023).
create or replace function private.purge_audit(older_than timestamptz)
  returns bigint
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  n_actions bigint;
  n_events bigint;
begin
  perform private.require_platform('platform.system.configure');
  if older_than is null or older_than > now() - interval '2 years' then
    raise exception 'purge_audit: audit rows are kept for 2 years; % is inside that period', older_than
      using errcode = '22023';
  end if;
  perform set_config('tenantdb.audit_purge', 'on', true);
  delete from audit.platform_actions a where a.occurred_at < older_than;
  get diagnostics n_actions = row_count;
  delete from audit.security_events e where e.occurred_at < older_than;
  get diagnostics n_events = row_count;
  perform set_config('tenantdb.audit_purge', 'off', true);
  insert into audit.platform_actions (action, actor_id, details)
  values ('audit.purge', auth.uid(), jsonb_build_object('older_than', older_than, 'platform_actions', n_actions, 'security_events', n_events));
  return n_actions + n_events;
end
$fn$;
comment on function private.purge_audit is 'Definer twin of purge_audit: the only way audit rows leave, after 2 years, itself audited.';
{{ m.private_grants('purge_audit') }}
{{ m.api_function('purge_audit', 'p_older_than timestamptz', 'bigint', 'p_older_than',
   'Deletes platform actions and security events older than a cut-off at least 2 years back, and audits the purge. Needs service_role or platform.system.configure (42501); cut-off too recent: 22023.') }}

-- Impersonation -------------------------------------------------------------

-- private.start_impersonation(target_user uuid, reason text, minutes integer) -> uuid
-- Opens an impersonation session and returns its id (the back end puts it
-- in the impersonation_session claim of the target's JWT). Refuses, each
-- time also writing a security event (kept if the caller's transaction
-- survives the error) and a server log line: without platform.user.impersonate
-- (42501); a target who is platform staff (42501); oneself (22023); an
-- unknown user (P0002); a reason under 5 characters or minutes outside
-- 1..240 (22023). Callable by authenticated platform staff.
create or replace function private.start_impersonation(target_user uuid, reason text, minutes integer)
  returns uuid
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  new_id uuid;
  refusal text;
  code text;
begin
  if not private.has_system_permission('platform.user.impersonate') then
    refusal := 'permission platform.user.impersonate is required'; code := '42501';
  elsif target_user is null or not exists (select from identity.users u where u.id = target_user) then
    refusal := 'unknown user'; code := 'P0002';
  elsif target_user = auth.uid() then
    refusal := 'you cannot impersonate yourself'; code := '22023';
  elsif exists (select from iam.system_role_grants g
                 where g.user_id = target_user and g.revoked_at is null and (g.expires_at is null or g.expires_at > now())) then
    refusal := 'platform staff cannot be impersonated'; code := '42501';
  elsif coalesce(length(btrim(reason)), 0) < 5 or minutes is null or minutes not between 1 and 240 then
    refusal := 'a reason (5+ characters) and 1 to 240 minutes are required'; code := '22023';
  end if;
  if refusal is not null then
    -- The security event is part of the caller's transaction, which the
    -- error below rolls back unless the caller catches it; the server log
    -- line (RAISE LOG) survives in every case.
    raise log 'tenantdb security event impersonation.refused: user % target % reason %', auth.uid(), target_user, refusal;
    perform private.record_security_event('impersonation.refused', 'high', target_user,
                                          jsonb_build_object('reason', refusal, 'requested_reason', reason, 'minutes', minutes));
    raise exception 'start_impersonation: %', refusal using errcode = code;
  end if;
  insert into audit.impersonation_sessions (impersonator_id, target_user_id, reason, expires_at)
  values (auth.uid(), target_user, btrim(reason), clock_timestamp() + make_interval(mins => minutes))
  returning id into new_id;
  return new_id;
end
$fn$;
comment on function private.start_impersonation is 'Definer twin of start_impersonation.';
{{ m.private_grants('start_impersonation') }}
{{ m.api_function('start_impersonation', 'p_target_user uuid, p_reason text, p_minutes integer default 30', 'uuid', 'p_target_user, p_reason, p_minutes',
   'Opens an impersonation session (at most 4 hours). Needs platform.user.impersonate; refuses platform staff as target (42501), oneself or bad input (22023), unknown user (P0002).') }}

-- private.end_impersonation() -> uuid
-- Ends the active impersonation session: the one named by the request's
-- impersonation_session claim, else the caller's own as impersonator.
-- Returns its id. Refuses: no active session (P0002).
create or replace function private.end_impersonation()
  returns uuid
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  sid uuid;
begin
  select s.id into sid from audit.impersonation_sessions s
   where (s.id::text = auth.jwt() ->> 'impersonation_session' and s.target_user_id = auth.uid()
          or s.impersonator_id = auth.uid())
     and s.expires_at > now()
     and not exists (select from audit.impersonation_endings e where e.session_id = s.id)
   order by s.started_at desc limit 1;
  if sid is null then
    raise exception 'end_impersonation: no active impersonation session' using errcode = 'P0002';
  end if;
  insert into audit.impersonation_endings (session_id, ended_by, reason)
  values (sid, auth.uid(), 'ended');
  return sid;
end
$fn$;
comment on function private.end_impersonation is 'Definer twin of end_impersonation.';
{{ m.private_grants('end_impersonation') }}
{{ m.api_function('end_impersonation', '', 'uuid', '',
   'Ends the active impersonation session and returns its id. None active: P0002.') }}

-- Break-glass -----------------------------------------------------------------

-- private.activate_break_glass(reason text, minutes integer) -> uuid
-- Records the activation of the caller's active break-glass grant, for a
-- reason and at most 4 hours, with a critical security event; returns the
-- event id. Refuses: no active grant of a break-glass role (42501, also
-- recorded as a security event); a reason under 10 characters or minutes
-- outside 1..240 (22023).
create or replace function private.activate_break_glass(reason text, minutes integer)
  returns uuid
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  grant_row uuid;
  new_id uuid;
begin
  select g.id into grant_row from iam.system_role_grants g join iam.roles r on r.key = g.role_key
   where g.user_id = auth.uid() and r.is_break_glass and g.revoked_at is null and (g.expires_at is null or g.expires_at > now())
   limit 1;
  if grant_row is null then
    raise log 'tenantdb security event break_glass.refused: user %', auth.uid();
    perform private.record_security_event('break_glass.refused', 'high', auth.uid(), jsonb_build_object('reason', reason));
    raise exception 'activate_break_glass: you hold no active break-glass grant' using errcode = '42501';
  end if;
  if coalesce(length(btrim(reason)), 0) < 10 or minutes is null or minutes not between 1 and 240 then
    raise exception 'activate_break_glass: a reason (10+ characters) and 1 to 240 minutes are required' using errcode = '22023';
  end if;
  insert into audit.break_glass_events (user_id, grant_id, reason, expires_at)
  values (auth.uid(), grant_row, btrim(reason), clock_timestamp() + make_interval(mins => minutes))
  returning id into new_id;
  perform private.record_security_event('break_glass.activated', 'critical', auth.uid(),
                                        jsonb_build_object('break_glass_event_id', new_id, 'reason', reason, 'minutes', minutes));
  return new_id;
end
$fn$;
comment on function private.activate_break_glass is 'Definer twin of activate_break_glass.';
{{ m.private_grants('activate_break_glass') }}
{{ m.api_function('activate_break_glass', 'p_reason text, p_minutes integer default 60', 'uuid', 'p_reason, p_minutes',
   'Activates the caller\'s break-glass grant with a critical security event. No such grant: 42501; bad input: 22023.') }}

-- Security events from grants ---------------------------------------------------

-- private.system_role_granted_event() -> trigger
-- AFTER INSERT on iam.system_role_grants: a high-severity security event.
create or replace function private.system_role_granted_event()
  returns trigger
  language plpgsql
  {{ m.definer() }}
as $fn$
begin
  perform private.record_security_event('iam.system_role_granted', 'high', new.user_id,
                                        jsonb_build_object('grant_id', new.id, 'role_key', new.role_key, 'reason', new.reason));
  return null;
end
$fn$;
comment on function private.system_role_granted_event is 'Trigger: a security event for every system role granted.';
{{ m.row_trigger('iam.system_role_grants', 'system_role_granted_event', 'after insert', 'private.system_role_granted_event') }}

-- Incidents ---------------------------------------------------------------------

-- private.open_incident(title text, severity text, description text) -> uuid
-- Opens an incident with its first timeline entry (status open); returns
-- its id. Refuses: not trusted and no platform.security.view (42501); bad
-- severity or empty title (the tables' constraints).
create or replace function private.open_incident(title text, severity text, description text)
  returns uuid
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  new_id uuid;
begin
  perform private.require_platform('platform.security.view');
  insert into audit.incidents (opened_by, title, severity, description)
  values (auth.uid(), open_incident.title, open_incident.severity, open_incident.description)
  returning id into new_id;
  insert into audit.incident_updates (incident_id, seq, status, note, by_user)
  values (new_id, 1, 'open', coalesce(description, title), auth.uid());
  return new_id;
end
$fn$;
comment on function private.open_incident is 'Definer twin of open_incident.';
{{ m.private_grants('open_incident') }}
{{ m.api_function('open_incident', 'p_title text, p_severity text, p_description text default null', 'uuid', 'p_title, p_severity, p_description',
   'Opens an incident (status open). Needs platform.security.view (42501).') }}

-- private.update_incident(incident_id uuid, status text, note text) -> integer
-- Appends a timeline entry; returns its sequence number. Statuses only move
-- forward: open -> investigating -> mitigated -> resolved -> closed
-- (steps may be skipped). Refuses: not trusted and no
-- platform.security.view (42501); unknown incident (P0002); a step back or
-- an empty note (22023).
create or replace function private.update_incident(incident_id uuid, status text, note text)
  returns integer
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  steps text[] := array['open', 'investigating', 'mitigated', 'resolved', 'closed'];
  last_status text;
  last_seq int;
begin
  perform private.require_platform('platform.security.view');
  select u.status, u.seq into last_status, last_seq from audit.incident_updates u
   where u.incident_id = update_incident.incident_id order by u.seq desc limit 1 for update;
  if last_seq is null then
    raise exception 'update_incident: no incident %', incident_id using errcode = 'P0002';
  end if;
  if array_position(steps, update_incident.status) is null
     or array_position(steps, update_incident.status) < array_position(steps, last_status)
     or coalesce(btrim(note), '') = '' then
    raise exception 'update_incident: % -> % is not a step forward (or the note is empty)', last_status, status
      using errcode = '22023';
  end if;
  insert into audit.incident_updates (incident_id, seq, status, note, by_user)
  values (update_incident.incident_id, last_seq + 1, update_incident.status, note, auth.uid());
  return last_seq + 1;
end
$fn$;
comment on function private.update_incident is 'Definer twin of update_incident.';
{{ m.private_grants('update_incident') }}
{{ m.api_function('update_incident', 'p_incident_id uuid, p_status text, p_note text', 'integer', 'p_incident_id, p_status, p_note',
   'Appends to an incident\'s timeline, status only moving forward. Needs platform.security.view (42501); unknown: P0002; step back: 22023.') }}

-- The privileged tables: each change writes its audit row (macro audited).
{{ m.audited('iam.system_role_grants', 'iam.system_role_grant') }}
{{ m.audited('catalog.plans', 'catalog.plan') }}
{{ m.audited('catalog.plan_features', 'catalog.plan_feature') }}
{{ m.audited('billing.credit_ledger', 'billing.credit', events='insert') }}
{{ m.audited('billing.subscriptions', 'billing.subscription', events='insert or update') }}
{{ m.audited('billing.invoices', 'billing.invoice_status', events='update of status', when='old.status is distinct from new.status') }}
{{ m.audited('billing.one_off_payments', 'billing.one_off_payment', events='insert or update of status') }}
{{ m.audited('iam.roles', 'iam.role') }}
{{ m.audited('iam.permissions', 'iam.permission') }}
{{ m.audited('iam.role_permissions', 'iam.role_permission') }}
{{ m.audited('tenancy.organizations', 'tenancy.organization_status', events='update of status', when='old.status is distinct from new.status') }}
{{ m.audited('tenancy.organizations', 'tenancy.organization', events='delete', name='audit_platform_action_delete') }}
{#- Ownership changes: a transfer, a demotion or removal of an owner, an
    owner joining through an invitation (the signup's own owner membership
    has no inviter and is not an ownership change). -#}
{{ m.audited('tenancy.memberships', 'tenancy.ownership', events='update of role_key',
             when="old.role_key is distinct from new.role_key and 'tenant_owner' in (old.role_key, new.role_key)") }}
{{ m.audited('tenancy.memberships', 'tenancy.ownership', events='delete', when="old.role_key = 'tenant_owner'",
             name='audit_platform_action_delete') }}
{{ m.audited('tenancy.memberships', 'tenancy.ownership', events='insert',
             when="new.role_key = 'tenant_owner' and new.invited_by is not null", name='audit_platform_action_insert') }}
{{ m.audited('audit.impersonation_sessions', 'audit.impersonation_start', events='insert') }}
{{ m.audited('audit.impersonation_endings', 'audit.impersonation_end', events='insert') }}
{{ m.audited('audit.break_glass_events', 'audit.break_glass_activation', events='insert') }}
