-- 0009 privacy (GDPR): consents, data-subject requests, the Art. 30
-- personal-data inventory, and the record of erasures. Columns holding
-- personal data carry the tag @personal in their comment; `tenantdb verify`
-- fails when a tagged column is missing from privacy.data_inventory.
{% import 'sql/macros.sql' as m with context %}

create schema privacy;
comment on schema privacy is 'tenantdb privacy: consents, data-subject requests, the personal-data inventory, erasures.';
revoke all on schema privacy from public;
grant usage on schema privacy to authenticated, service_role;

create table privacy.consents (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null,
  purpose text not null,
  status text not null,
  legal_basis text not null,
  policy_version text not null,
  occurred_at timestamptz not null default clock_timestamp(),
  constraint consents_status_known check (status in ('granted', 'withdrawn')),
  constraint consents_legal_basis_known check (legal_basis in ('consent', 'contract', 'legal_obligation', 'vital_interests', 'public_task', 'legitimate_interests')),
  constraint consents_purpose_format check (purpose ~ '^[a-z][a-z0-9_]*$')
);
create index consents_user_purpose on privacy.consents (user_id, purpose, occurred_at desc);
comment on table privacy.consents is 'Append-only consent history per user and purpose: each grant and withdrawal with its legal basis and policy version. The current state is the latest row (view current_consents).';
comment on column privacy.consents.user_id is 'The data subject; not a foreign key: the evidence outlives the account.';
{{ m.table_grants('privacy.consents', 'select') }}

create table privacy.subject_requests (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null,
  request_type text not null,
  status text not null default 'received',
  received_at timestamptz not null default now(),
  due_at timestamptz not null default now() + interval '30 days',
  completed_at timestamptz,
  handled_by uuid,
  notes text,
  updated_at timestamptz not null default now(),
  constraint subject_requests_type_known check (request_type in ('access', 'erasure', 'rectification', 'portability', 'restriction', 'objection')),
  constraint subject_requests_status_known check (status in ('received', 'verified', 'in_progress', 'completed', 'rejected')),
  constraint subject_requests_due_in_30_days check (due_at <= received_at + interval '30 days'),
  constraint subject_requests_completion_stamped check ((status in ('completed', 'rejected')) = (completed_at is not null))
);
create index subject_requests_user on privacy.subject_requests (user_id);
create index subject_requests_open_due on privacy.subject_requests (due_at) where status not in ('completed', 'rejected');
comment on table privacy.subject_requests is 'GDPR data-subject requests (Art. 15-21): received, due within 30 days, handled by platform staff; status only moves forward.';
comment on column privacy.subject_requests.user_id is 'The data subject; not a foreign key: the record outlives the account.';
{{ m.table_grants('privacy.subject_requests', 'select') }}

create table privacy.data_inventory (
  schema_name text not null,
  table_name text not null,
  column_name text not null,
  category text not null,
  purpose text not null,
  legal_basis text not null,
  retention text not null,
  subject_column text not null,
  subject_match text not null default 'user_id',
  erase_with text,
  exported boolean not null default true,
  primary key (schema_name, table_name, column_name),
  constraint data_inventory_erase_with_known check (erase_with is null or erase_with in
    ('delete', 'null', 'empty_array', 'empty_object', 'erased_text', 'erased_email', 'erased_slug')),
  constraint data_inventory_subject_match_known check (subject_match in ('user_id', 'email')),
  constraint data_inventory_legal_basis_known check (legal_basis in ('consent', 'contract', 'legal_obligation', 'vital_interests', 'public_task', 'legitimate_interests'))
);
comment on table privacy.data_inventory is 'GDPR Art. 30 record: every column holding personal data, why, on what basis, for how long, and how erasure treats it. Drives export_user_data and erase_user.';
comment on column privacy.data_inventory.subject_column is 'The column that says whose row it is (a user id, or an email with subject_match = email).';
comment on column privacy.data_inventory.erase_with is 'How erasure treats the column: null = kept (the legal basis says why); delete = the row goes; null, empty_array, empty_object, erased_text, erased_email, erased_slug = overwritten with that fixed value (erase_user maps each word to a fixed expression).';
comment on column privacy.data_inventory.exported is 'false for credentials (hashes, tokens): held about the user, never handed out by export_user_data.';
{{ m.table_grants('privacy.data_inventory', 'select') }}
revoke insert, update, delete on privacy.data_inventory from service_role;

create table privacy.erasures (
  user_id uuid primary key,
  erased_at timestamptz not null default clock_timestamp(),
  erased_by uuid,
  columns_erased integer not null,
  rows_deleted integer not null
);
comment on table privacy.erasures is 'One row per erased user: when, by whom, how much. Append-only; what was erased is in data_inventory.';
{{ m.table_grants('privacy.erasures', 'select') }}

-- The inventory of this release.
insert into privacy.data_inventory (schema_name, table_name, column_name, category, purpose, legal_basis, retention, subject_column, subject_match, erase_with)
select 'identity', 'users', c, category, purpose, 'contract', 'account lifetime', 'id', 'user_id', erase_with
  from (values
    ('username', 'identifier', 'public handle', 'null'),
    ('display_name', 'name', 'profile', 'null'), ('personal_title', 'name', 'profile', 'null'),
    ('first_name', 'name', 'profile', 'null'), ('middle_name', 'name', 'profile', 'null'), ('last_name', 'name', 'profile', 'null'),
    ('email', 'contact', 'account and notices', 'null'), ('phone_country_code', 'contact', 'account and notices', 'null'),
    ('phone_number', 'contact', 'account and notices', 'null'),
    ('personal_apt_suite', 'address', 'profile', 'null'), ('personal_street_address_1', 'address', 'profile', 'null'),
    ('personal_street_address_2', 'address', 'profile', 'null'), ('personal_city', 'address', 'profile', 'null'),
    ('personal_state', 'address', 'profile', 'null'), ('personal_postal_code', 'address', 'profile', 'null'),
    ('personal_country', 'address', 'profile', 'null'), ('bio', 'profile', 'profile', 'null'),
    ('education', 'profile', 'profile', 'empty_array'), ('work_experience', 'profile', 'profile', 'empty_array'),
    ('business_position', 'employment', 'profile', 'null'), ('business_company', 'employment', 'profile', 'null'),
    ('business_apt_suite', 'address', 'profile', 'null'), ('business_street_address_1', 'address', 'profile', 'null'),
    ('business_street_address_2', 'address', 'profile', 'null'), ('business_city', 'address', 'profile', 'null'),
    ('business_state', 'address', 'profile', 'null'), ('business_postal_code', 'address', 'profile', 'null'),
    ('business_country', 'address', 'profile', 'null')
  ) as v (c, category, purpose, erase_with)
union all
select * from (values
  ('auth', 'users', 'email', 'contact', 'sign-in', 'contract', 'account lifetime', 'id', 'user_id', 'erased_email'),
  ('auth', 'users', 'phone', 'contact', 'sign-in', 'contract', 'account lifetime', 'id', 'user_id', 'null'),
  ('auth', 'users', 'raw_user_meta_data', 'profile', 'sign-in', 'contract', 'account lifetime', 'id', 'user_id', 'empty_object'),
  ('tenancy', 'organizations', 'name', 'name', 'the personal workspace is named after its user', 'contract', 'account lifetime', 'personal_owner_id', 'user_id', 'erased_text'),
  ('tenancy', 'organizations', 'slug', 'identifier', 'the personal workspace''s URL holds the email''s local part', 'contract', 'account lifetime', 'personal_owner_id', 'user_id', 'erased_slug'),
  ('tenancy', 'invitations', 'email', 'contact', 'invitations to join', 'legitimate_interests', '30 days after expiry', 'email', 'email', 'erased_email'),
  ('audit', 'platform_actions', 'ip', 'network', 'security and accountability', 'legal_obligation', '2 years', 'actor_id', 'user_id', null),
  ('audit', 'platform_actions', 'user_agent', 'network', 'security and accountability', 'legal_obligation', '2 years', 'actor_id', 'user_id', null),
  ('audit', 'platform_actions', 'details', 'record of change', 'the rows a privileged change touched (may hold names, emails)', 'legal_obligation', '2 years', 'actor_id', 'user_id', null),
  ('audit', 'security_events', 'details', 'record of event', 'security', 'legal_obligation', '2 years', 'actor_id', 'user_id', null),
  ('audit', 'security_events', 'ip', 'network', 'security', 'legal_obligation', '2 years', 'actor_id', 'user_id', null),
  ('audit', 'security_events', 'user_agent', 'network', 'security', 'legal_obligation', '2 years', 'actor_id', 'user_id', null)
) as v;
{% if target == 'postgres' %}
insert into privacy.data_inventory (schema_name, table_name, column_name, category, purpose, legal_basis, retention, subject_column, subject_match, erase_with) values
  ('identity', 'sessions', 'ip_address', 'network', 'session security', 'legitimate_interests', 'session lifetime', 'user_id', 'user_id', 'delete'),
  ('identity', 'sessions', 'user_agent', 'network', 'session security', 'legitimate_interests', 'session lifetime', 'user_id', 'user_id', 'delete'),
  ('identity', 'accounts', 'account_id', 'identifier', 'sign-in', 'contract', 'account lifetime', 'user_id', 'user_id', 'delete'),
  ('identity', 'accounts', 'password_hash', 'credential', 'sign-in', 'contract', 'account lifetime', 'user_id', 'user_id', 'delete'),
  ('identity', 'accounts', 'access_token', 'credential', 'sign-in', 'contract', 'account lifetime', 'user_id', 'user_id', 'delete'),
  ('identity', 'accounts', 'refresh_token', 'credential', 'sign-in', 'contract', 'account lifetime', 'user_id', 'user_id', 'delete'),
  ('identity', 'verifications', 'identifier', 'contact', 'verification codes', 'contract', 'until the code expires', 'identifier', 'email', 'delete');
update privacy.data_inventory set exported = false
 where (schema_name, table_name) = ('identity', 'accounts') and column_name in ('password_hash', 'access_token', 'refresh_token');
{% endif %}
-- Descriptive fields of the personal workspace, and notes on requests.
insert into privacy.data_inventory (schema_name, table_name, column_name, category, purpose, legal_basis, retention, subject_column, subject_match, erase_with) values
  ('tenancy', 'organizations', 'description', 'profile', 'the personal workspace', 'contract', 'account lifetime', 'personal_owner_id', 'user_id', 'null'),
  ('tenancy', 'organizations', 'avatar_url', 'profile', 'the personal workspace', 'contract', 'account lifetime', 'personal_owner_id', 'user_id', 'null'),
  ('tenancy', 'organizations', 'settings', 'profile', 'the personal workspace', 'contract', 'account lifetime', 'personal_owner_id', 'user_id', 'empty_object'),
  ('tenancy', 'organizations', 'metadata', 'profile', 'the personal workspace', 'contract', 'account lifetime', 'personal_owner_id', 'user_id', 'empty_object'),
  ('privacy', 'subject_requests', 'notes', 'correspondence', 'handling the request', 'legal_obligation', '3 years', 'user_id', 'user_id', 'null');

-- The @personal tag on every inventoried column of tenantdb's own schemas
-- (auth.users belongs to the auth provider and is not tagged). A later
-- migration that adds a personal column tags it in its own comment.
do $tag$
declare
  r record;
begin
  for r in select i.schema_name, i.table_name, i.column_name,
                  col_description(format('%I.%I', i.schema_name, i.table_name)::regclass, a.attnum) as existing
             from privacy.data_inventory i
             join pg_catalog.pg_attribute a on a.attrelid = format('%I.%I', i.schema_name, i.table_name)::regclass
                                           and a.attname = i.column_name
            where i.schema_name <> 'auth' loop
    continue when coalesce(r.existing, '') like '@personal%';
    execute format('comment on column %I.%I.%I is %L', r.schema_name, r.table_name, r.column_name,
                   '@personal ' || coalesce(r.existing, ''));
  end loop;
end
$tag$;
