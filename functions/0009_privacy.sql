-- privacy: consents, subject requests, export and erasure driven by the
-- inventory.
{% import 'sql/macros.sql' as m with context %}

{{ m.append_only('privacy.consents') }}
{{ m.append_only('privacy.erasures') }}
{{ m.audited('privacy.erasures', 'privacy.erasure', events='insert') }}
{{ m.audited('privacy.data_inventory', 'privacy.inventory') }}
{{ m.audited('privacy.subject_requests', 'privacy.subject_request', events='update of status', when='old.status is distinct from new.status') }}

-- private.record_consent(purpose text, status text, legal_basis text, policy_version text) -> uuid
-- Appends the caller's consent decision for a purpose; returns its id.
-- Refuses: signed out (42501); bad purpose, basis or missing version
-- (22023 or the table's constraints).
create or replace function private.record_consent(purpose text, status text, legal_basis text, policy_version text)
  returns uuid
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  new_id uuid;
begin
  if auth.uid() is null then
    raise exception 'consent: sign-in required' using errcode = '42501';
  end if;
  if coalesce(btrim(policy_version), '') = '' then
    raise exception 'consent: a policy version is required' using errcode = '22023';
  end if;
  insert into privacy.consents (user_id, purpose, status, legal_basis, policy_version)
  values (auth.uid(), record_consent.purpose, record_consent.status, coalesce(record_consent.legal_basis, 'consent'),
          record_consent.policy_version)
  returning id into new_id;
  return new_id;
end
$fn$;
comment on function private.record_consent is 'Internal twin of give_consent and withdraw_consent.';
{{ m.private_grants('record_consent') }}

create or replace function {{ api }}.give_consent(p_purpose text, p_policy_version text, p_legal_basis text default 'consent')
  returns uuid language sql security invoker {{ m.pinned() }}
as $fn$ select private.record_consent(p_purpose, 'granted', p_legal_basis, p_policy_version) $fn$;
comment on function {{ api }}.give_consent is 'Records the caller''s consent to a purpose under a policy version; returns the record id. Signed out: 42501; bad input: 22023/23514.';
revoke all on function {{ api }}.give_consent from public, anon;
grant execute on function {{ api }}.give_consent to authenticated, service_role;

create or replace function {{ api }}.withdraw_consent(p_purpose text, p_policy_version text)
  returns uuid language sql security invoker {{ m.pinned() }}
as $fn$ select private.record_consent(p_purpose, 'withdrawn', 'consent', p_policy_version) $fn$;
comment on function {{ api }}.withdraw_consent is 'Records the withdrawal of the caller''s consent to a purpose; history is kept. Signed out: 42501.';
revoke all on function {{ api }}.withdraw_consent from public, anon;
grant execute on function {{ api }}.withdraw_consent to authenticated, service_role;

create or replace view {{ api }}.current_consents
  with (security_invoker = true) as
select distinct on (c.user_id, c.purpose) c.user_id, c.purpose, c.status = 'granted' as granted, c.legal_basis,
       c.policy_version, c.occurred_at as decided_at
  from privacy.consents c
 order by c.user_id, c.purpose, c.occurred_at desc, c.id;
comment on view {{ api }}.current_consents is 'The current consent per user and purpose: the latest decision in privacy.consents (caller''s rights).';
{{ m.view_grants(api ~ '.current_consents') }}

-- Subject requests ---------------------------------------------------------------

-- private.subject_requests_transition() -> trigger
-- BEFORE UPDATE: status only moves forward (23514,
-- subject_requests_status_transition):
--   received -> verified | rejected; verified -> in_progress | rejected;
--   in_progress -> completed | rejected.
-- Stamps completed_at; the subject, type and receipt never change.
create or replace function private.subject_requests_transition()
  returns trigger
  language plpgsql
  {{ m.pinned() }}
as $fn$
begin
  if (new.user_id, new.request_type, new.received_at, new.due_at) is distinct from (old.user_id, old.request_type, old.received_at, old.due_at) then
    raise exception 'subject request %: subject, type and dates cannot change', old.id
      using errcode = '23514', constraint = 'subject_requests_frozen';
  end if;
  if new.status is distinct from old.status and not (old.status, new.status) in (
       ('received', 'verified'), ('received', 'rejected'), ('verified', 'in_progress'), ('verified', 'rejected'),
       ('in_progress', 'completed'), ('in_progress', 'rejected')) then
    raise exception 'subject request % cannot move from % to %', old.id, old.status, new.status
      using errcode = '23514', constraint = 'subject_requests_status_transition';
  end if;
  new.completed_at := case when new.status in ('completed', 'rejected') then coalesce(new.completed_at, now()) end;
  new.updated_at := now();
  return new;
end
$fn$;
comment on function private.subject_requests_transition is 'Trigger: subject requests only move forward (23514).';
{{ m.row_trigger('privacy.subject_requests', 'subject_requests_transition', 'before update', 'private.subject_requests_transition') }}

-- private.submit_subject_request(request_type text, notes text) -> uuid
-- The caller asks for access, erasure, rectification, portability,
-- restriction or objection; due in 30 days. Refuses: signed out (42501);
-- an unknown type (the table's constraint, 23514).
create or replace function private.submit_subject_request(request_type text, notes text)
  returns uuid
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  new_id uuid;
begin
  if auth.uid() is null then
    raise exception 'submit_subject_request: sign-in required' using errcode = '42501';
  end if;
  insert into privacy.subject_requests (user_id, request_type, notes)
  values (auth.uid(), submit_subject_request.request_type, submit_subject_request.notes)
  returning id into new_id;
  return new_id;
end
$fn$;
comment on function private.submit_subject_request is 'Definer twin of submit_subject_request.';
{{ m.private_grants('submit_subject_request') }}
{{ m.api_function('submit_subject_request', 'p_request_type text, p_notes text default null', 'uuid', 'p_request_type, p_notes',
   'Files a GDPR request of the caller (due in 30 days). Signed out: 42501; unknown type: 23514.') }}

-- private.advance_subject_request(request_id uuid, status text, note text) -> void
-- Moves a request forward and records who handled it. Refuses: not trusted
-- and no platform.privacy.manage (42501); unknown request (P0002); a move
-- backwards (23514).
create or replace function private.advance_subject_request(request_id uuid, status text, note text)
  returns void
  language plpgsql
  {{ m.definer() }}
as $fn$
begin
  perform private.require_platform('platform.privacy.manage');
  update privacy.subject_requests r
     set status = advance_subject_request.status, handled_by = auth.uid(),
         notes = concat_ws(E'\n', r.notes, advance_subject_request.note)
   where r.id = request_id;
  if not found then
    raise exception 'advance_subject_request: no request %', request_id using errcode = 'P0002';
  end if;
end
$fn$;
comment on function private.advance_subject_request is 'Definer twin of advance_subject_request.';
{{ m.private_grants('advance_subject_request') }}
{{ m.api_function('advance_subject_request', 'p_request_id uuid, p_status text, p_note text default null', 'void', 'p_request_id, p_status, p_note',
   'Moves a subject request forward. Needs platform.privacy.manage (42501); unknown: P0002; backwards: 23514.') }}
{{ m.updated_at('privacy.subject_requests') }}

-- Export and erasure ---------------------------------------------------------------

-- private.require_subject_or_privacy_staff(user_id uuid) -> void
-- Refuses (42501) unless the caller is the user, trusted, or holds
-- platform.privacy.manage; refuses (P0002) an unknown user.
create or replace function private.require_subject_or_privacy_staff(user_id uuid)
  returns void
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
begin
  if not (user_id = auth.uid() or private.is_trusted_caller() or private.has_system_permission('platform.privacy.manage')) then
    raise exception 'only the user or privacy staff may do this' using errcode = '42501';
  end if;
  if user_id is null or not exists (select from identity.users u where u.id = user_id) then
    raise exception 'no user %', user_id using errcode = 'P0002';
  end if;
end
$fn$;
comment on function private.require_subject_or_privacy_staff is 'Raises unless the caller is the subject or privacy staff, and the user exists.';
revoke all on function private.require_subject_or_privacy_staff from public, anon, authenticated;

-- private.subject_rows(subject_column text, subject_match text) -> text
-- The WHERE clause that picks a data subject's rows of an inventoried
-- table, with $1 = the user id, $2 = their email, $3 = the CRM person ids
-- (subject_match user_id, email, person_id; org_client_id: the column
-- holds a client row of one of the people). Refuses nothing.
create or replace function private.subject_rows(subject_column text, subject_match text)
  returns text
  language sql
  immutable
  {{ m.pinned() }}
as $fn$
select case subject_match
         when 'email' then format('lower(t.%I) = lower($2)', subject_column)
         when 'person_id' then format('t.%I = any ($3)', subject_column)
         when 'org_client_id' then format('t.%I in (select oc.id from crm.org_clients oc where oc.person_id = any ($3))', subject_column)
         else format('t.%I = $1', subject_column)
       end
$fn$;
comment on function private.subject_rows is 'The WHERE clause selecting a data subject''s rows ($1 user id, $2 email, $3 CRM person ids).';
{{ m.private_grants('subject_rows', 'service_role') }}

-- private.linked_people(user_id uuid) -> uuid[]
-- The CRM people linked to a user (empty without the crm schema).
create or replace function private.linked_people(user_id uuid)
  returns uuid[]
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
declare
  found_ids uuid[] := '{}';
begin
  if to_regclass('crm.user_person_links') is not null then
    execute 'select coalesce(array_agg(l.person_id order by l.person_id), ''{}'') from crm.user_person_links l where l.user_id = $1'
      into found_ids using user_id;
  end if;
  return found_ids;
end
$fn$;
comment on function private.linked_people is 'The CRM people linked to a user.';
{{ m.private_grants('linked_people', 'service_role') }}

-- private.export_subject(user_id uuid, email text, people uuid[], org_records boolean) -> jsonb
-- The inventoried columns of every row of the subject (a user, their email,
-- CRM people): {"schema.table": [rows]} for each table with rows, and the
-- people's marketing consents. Without org_records, what organizations
-- recorded about the people (the CRM tables with an organization_id: a
-- provider's notes, custom fields, its record of the client) is left out,
-- and so are the consent records an organization made and who made them:
-- those are the organization's records, released by it or by privacy staff
-- (export_person_data). The callers check who asks. Refuses nothing.
create or replace function private.export_subject(user_id uuid, email text, people uuid[], org_records boolean default true)
  returns jsonb
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
declare
  result jsonb := '{}';
  t record;
  rows jsonb;
begin
  for t in select i.schema_name, i.table_name, i.subject_column, i.subject_match,
                  string_agg(format('%L, t.%I', i.column_name, i.column_name), ', ' order by i.column_name) as pairs
             from privacy.data_inventory i
            where to_regclass(format('%I.%I', i.schema_name, i.table_name)) is not null and i.exported
              and (org_records or i.subject_match not in ('person_id', 'org_client_id')
                   or not exists (select from pg_catalog.pg_attribute a
                                   where a.attrelid = to_regclass(format('%I.%I', i.schema_name, i.table_name))
                                     and a.attname = 'organization_id' and not a.attisdropped))
            group by i.schema_name, i.table_name, i.subject_column, i.subject_match loop
    execute format('select jsonb_agg(jsonb_build_object(%s)) from %I.%I t where %s',
                   t.pairs, t.schema_name, t.table_name, private.subject_rows(t.subject_column, t.subject_match))
      into rows using user_id, email, coalesce(people, '{}');
    if rows is not null then
      result := result || jsonb_build_object(t.schema_name || '.' || t.table_name, rows);
    end if;
  end loop;
  if cardinality(people) > 0 then
    execute 'select coalesce(jsonb_agg(to_jsonb(c) order by c.occurred_at), ''[]'') from crm.marketing_consents c
              where c.person_id = any ($1) and ($2 or c.source = ''person'')'
      into rows using people, org_records;
    result := result || jsonb_build_object('crm.marketing_consents', rows);
  end if;
  return result;
end
$fn$;
comment on function private.export_subject is 'Everything privacy.data_inventory lists about a subject (user id, email, CRM people).';
{{ m.private_grants('export_subject', 'service_role') }}

-- private.export_user_data(user_id uuid) -> jsonb
-- Everything the inventory lists about the user: {"schema.table": [rows of
-- the inventoried columns]} for each table with rows of theirs (the own
-- record of the CRM people linked to them included), the consents and
-- requests, and what their providers share with them (crm.service_history,
-- the client portal). What a provider recorded about them for itself
-- (notes, custom fields) is the provider's: export_person_data, by privacy
-- staff on a request.
-- Refuses: not the user and no platform.privacy.manage (42501); unknown
-- user (P0002).
create or replace function private.export_user_data(user_id uuid)
  returns jsonb
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
declare
  email text;
  people uuid[];
  history jsonb := '{}';
begin
  perform private.require_subject_or_privacy_staff(user_id);
  select u.email into email from identity.users u where u.id = export_user_data.user_id;
  people := private.linked_people(user_id);
  if cardinality(people) > 0 and to_regprocedure('private.crm_service_history(uuid[], integer, timestamptz)') is not null then
    execute 'select jsonb_build_object(''crm.service_history'', coalesce(jsonb_agg(to_jsonb(h) order by h.created_at desc), ''[]''))
               from private.crm_service_history($1, 100000, null) h'
      into history using people;
  end if;
  return private.export_subject(user_id, email, people, false) || history
    || jsonb_build_object('privacy.consents', (select coalesce(jsonb_agg(to_jsonb(c) order by c.occurred_at), '[]')
                                                 from privacy.consents c where c.user_id = export_user_data.user_id))
    || jsonb_build_object('privacy.subject_requests', (select coalesce(jsonb_agg(to_jsonb(r) order by r.received_at), '[]')
                                                         from privacy.subject_requests r where r.user_id = export_user_data.user_id));
end
$fn$;
comment on function private.export_user_data is 'Definer twin of export_user_data.';
{{ m.private_grants('export_user_data') }}
{{ m.api_function('export_user_data', 'p_user_id uuid', 'jsonb', 'p_user_id',
   'Everything held about a user, driven by privacy.data_inventory (access and portability), CRM people linked to them included. Needs to be the user or platform.privacy.manage (42501); unknown user: P0002.', stable=true) }}

-- private.erase_subject(user_id uuid, email text, people uuid[]) -> table (columns_erased integer, rows_deleted integer)
-- Anonymizes a subject's rows as the inventory says (erase_with: a fixed
-- expression per word, DELETE, or null = kept with its legal basis):
-- rows to delete first, then columns to overwrite; email-matched tables
-- before the profile's email is erased. The callers check who asks and
-- record the erasure. Refuses nothing.
create or replace function private.erase_subject(user_id uuid, email text, people uuid[])
  returns table (columns_erased integer, rows_deleted integer)
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  t record;
  n int;
begin
  columns_erased := 0;
  rows_deleted := 0;
  for t in select i.schema_name, i.table_name, i.subject_column, i.subject_match,
                  bool_or(i.erase_with = 'delete') as delete_rows,
                  -- Each word maps to a fixed expression: the inventory never supplies SQL.
                  string_agg(format('%I = %s', i.column_name, case i.erase_with
                               when 'null' then 'null'
                               when 'empty_array' then '''[]''::jsonb'
                               when 'empty_object' then '''{}''::jsonb'
                               when 'erased_text' then '''Erased'''
                               when 'erased_email' then '''erased-'' || md5(t.ctid::text || clock_timestamp()::text) || ''@erased.invalid'''
                               when 'erased_slug' then '''erased-'' || left(md5(t.ctid::text || clock_timestamp()::text), 12)' end),
                             ', ' order by i.column_name)
                    filter (where i.erase_with is not null and i.erase_with <> 'delete') as assignments,
                  count(*) filter (where i.erase_with is not null and i.erase_with <> 'delete') as n_columns
             from privacy.data_inventory i
            where to_regclass(format('%I.%I', i.schema_name, i.table_name)) is not null
            group by i.schema_name, i.table_name, i.subject_column, i.subject_match
            order by (i.subject_match = 'email') desc, (i.schema_name, i.table_name) = ('identity', 'users'), 1, 2 loop
    if t.delete_rows then
      execute format('delete from %I.%I t where %s', t.schema_name, t.table_name, private.subject_rows(t.subject_column, t.subject_match))
        using user_id, email, coalesce(people, '{}');
      get diagnostics n = row_count;
      rows_deleted := rows_deleted + n;
    elsif t.assignments is not null then
      execute format('update %I.%I t set %s where %s', t.schema_name, t.table_name, t.assignments,
                     private.subject_rows(t.subject_column, t.subject_match))
        using user_id, email, coalesce(people, '{}');
      get diagnostics n = row_count;
      columns_erased := columns_erased + n * t.n_columns;
    end if;
  end loop;
  return next;
end
$fn$;
comment on function private.erase_subject is 'Anonymizes a subject''s rows (user id, email, CRM people) as privacy.data_inventory says.';
{{ m.private_grants('erase_subject', 'service_role') }}

-- private.erase_user(user_id uuid) -> uuid
-- Anonymizes the user's personal data across every domain as the
-- inventory says, the CRM people linked to them included, marks the
-- profile deleted, records the erasure and returns the user id. Invoices,
-- ledger, usage and audit rows keep their amounts and ids. Running it
-- again changes nothing. Refuses: not trusted and no
-- platform.privacy.manage (42501); unknown user (P0002).
create or replace function private.erase_user(user_id uuid)
  returns uuid
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  email text;
  people uuid[];
  done record;
begin
  perform private.require_platform('platform.privacy.manage');
  if user_id is null or not exists (select from identity.users u where u.id = erase_user.user_id) then
    raise exception 'erase_user: no user %', user_id using errcode = 'P0002';
  end if;
  if exists (select from privacy.erasures e where e.user_id = erase_user.user_id) then
    return user_id;  -- erased before: nothing left to do
  end if;
  select u.email into email from identity.users u where u.id = erase_user.user_id;
  people := private.linked_people(user_id);
  select * into done from private.erase_subject(user_id, email, people);
  update identity.users u set deleted_at = coalesce(u.deleted_at, now()) where u.id = erase_user.user_id;
  insert into privacy.erasures (user_id, erased_by, columns_erased, rows_deleted)
  values (user_id, auth.uid(), done.columns_erased, done.rows_deleted);
  if cardinality(people) > 0 then
    -- The people are erased with the user; their own records say so.
    execute 'insert into privacy.person_erasures (person_id, erased_by, columns_erased, rows_deleted)
             select p, $2, 0, 0 from unnest($1) as p on conflict do nothing'
      using people, auth.uid();
  end if;
  return user_id;
end
$fn$;
comment on function private.erase_user is 'Definer twin of erase_user.';
{{ m.private_grants('erase_user') }}
{{ m.api_function('erase_user', 'p_user_id uuid', 'uuid', 'p_user_id',
   'Anonymizes a user\'s personal data per privacy.data_inventory (CRM people linked to them included), keeps what the law requires, records the erasure; safe to run twice. Needs service_role or platform.privacy.manage (42501); unknown user: P0002.') }}
