-- 0002 identity: the profile row of every auth user, the reserved user
-- names, and (postgres target) self-hosted auth tables.
{% import 'sql/macros.sql' as m with context %}

create table identity.users (
  id uuid primary key references auth.users (id) on delete cascade,
  username text,
  display_name text,
  personal_title text,
  first_name text,
  middle_name text,
  last_name text,
  email text,
  phone_country_code text,
  phone_number text,
  personal_apt_suite text,
  personal_street_address_1 text,
  personal_street_address_2 text,
  personal_city text,
  personal_state text,
  personal_postal_code text,
  personal_country text,
  bio text,
  education jsonb not null default '[]'::jsonb,
  work_experience jsonb not null default '[]'::jsonb,
  business_position text,
  business_company text,
  business_apt_suite text,
  business_street_address_1 text,
  business_street_address_2 text,
  business_city text,
  business_state text,
  business_postal_code text,
  business_country text,
  profile_completed boolean not null default false,
  onboarding_completed boolean not null default false,
  onboarding_completed_at timestamptz,
  deleted_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint users_username_format check (username ~ '^[A-Za-z][A-Za-z0-9_]{2,29}$'),
  constraint users_education_is_array check (jsonb_typeof(education) = 'array'),
  constraint users_work_experience_is_array check (jsonb_typeof(work_experience) = 'array'),
  constraint users_country_codes_iso check (
    (personal_country is null or personal_country ~ '^[A-Z]{2}$')
    and (business_country is null or business_country ~ '^[A-Z]{2}$')),
  constraint users_phone_country_code_format check (phone_country_code is null or phone_country_code ~ '^\+[0-9]{1,4}$'),
  constraint users_onboarding_stamped check (onboarding_completed = (onboarding_completed_at is not null))
);
create unique index users_username_unique_ci on identity.users (lower(username)) where username is not null;
create index users_email_ci on identity.users (lower(email));
comment on table identity.users is 'Profile of an auth user (id = auth.users.id), created by the signup trigger. Reference table under Citus.';
comment on column identity.users.username is 'Public handle: 3-30 characters, a letter first, then letters, digits or _; unique regardless of case; not a reserved name.';
comment on column identity.users.email is 'Copy of auth.users.email at signup, for display and invitations.';
comment on column identity.users.education is 'jsonb array of {school, degree, field, start, end} objects.';
comment on column identity.users.work_experience is 'jsonb array of {company, title, start, end, description} objects.';
comment on column identity.users.personal_country is 'ISO 3166-1 alpha-2 code.';
comment on column identity.users.business_country is 'ISO 3166-1 alpha-2 code.';
comment on column identity.users.deleted_at is 'GDPR anchor: set when the user asked to be erased.';
{{ m.table_grants('identity.users', 'select') }}
-- A user edits their own profile fields; flags and the GDPR anchor are set
-- by functions only.
grant update (username, display_name, personal_title, first_name, middle_name, last_name,
  phone_country_code, phone_number, personal_apt_suite, personal_street_address_1,
  personal_street_address_2, personal_city, personal_state, personal_postal_code,
  personal_country, bio, education, work_experience, business_position, business_company,
  business_apt_suite, business_street_address_1, business_street_address_2, business_city,
  business_state, business_postal_code, business_country, profile_completed)
  on identity.users to authenticated;

create table identity.reserved_usernames (
  name text primary key,
  constraint reserved_usernames_lower check (name = lower(name))
);
comment on table identity.reserved_usernames is 'User names nobody may take (compared case-insensitively).';
{{ m.table_grants('identity.reserved_usernames', 'select') }}
insert into identity.reserved_usernames (name) values
  ('admin'), ('administrator'), ('root'), ('system'), ('support'), ('help'),
  ('api'), ('www'), ('mail'), ('billing'), ('security'), ('staff'),
  ('owner'), ('superadmin'), ('platform'), ('console'), ('dashboard'),
  ('settings'), ('login'), ('logout'), ('signup'), ('null'), ('anonymous'),
  ('tenantdb'), ('postgres'), ('service_role'), ('authenticated'), ('anon');

{% if target == 'postgres' %}
create table identity.sessions (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references identity.users (id) on delete cascade,
  token_hash text not null,
  expires_at timestamptz not null,
  ip_address inet,
  user_agent text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint sessions_token_hash_unique unique (token_hash),
  constraint sessions_token_hash_is_sha256 check (token_hash ~ '^[0-9a-f]{64}$')
);
create index sessions_user_id on identity.sessions (user_id);
comment on table identity.sessions is 'Self-hosted auth: a login session (postgres target only; the app''s auth library writes it as service_role).';
comment on column identity.sessions.token_hash is 'sha256 hex of the session token; the token itself is never stored. Not readable by clients.';
{{ m.table_grants('identity.sessions', none) }}
grant select (id, user_id, expires_at, ip_address, user_agent, created_at, updated_at) on identity.sessions to authenticated;

create table identity.accounts (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references identity.users (id) on delete cascade,
  provider_id text not null,
  account_id text not null,
  password_hash text,
  access_token text,
  refresh_token text,
  scope text,
  expires_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint accounts_one_per_provider_account unique (provider_id, account_id)
);
create index accounts_user_id on identity.accounts (user_id);
comment on table identity.accounts is 'Self-hosted auth: a credential or OAuth link of a user (postgres target only).';
comment on column identity.accounts.provider_id is 'Identity provider: credential, google, github, ...';
comment on column identity.accounts.account_id is 'The user''s id at the provider.';
comment on column identity.accounts.password_hash is 'Password hash of the credential provider; never readable by clients.';
comment on column identity.accounts.access_token is 'Provider access token; never readable by clients.';
comment on column identity.accounts.refresh_token is 'Provider refresh token; never readable by clients.';
{{ m.table_grants('identity.accounts', none) }}
grant select (id, user_id, provider_id, account_id, scope, expires_at, created_at, updated_at) on identity.accounts to authenticated;

create table identity.verifications (
  id uuid primary key default gen_random_uuid(),
  identifier text not null,
  value_hash text not null,
  purpose text not null,
  expires_at timestamptz not null,
  created_at timestamptz not null default now(),
  constraint verifications_purpose_known check (purpose in ('email_verification', 'password_reset', 'magic_link', 'mfa'))
);
create index verifications_identifier on identity.verifications (identifier);
comment on table identity.verifications is 'Self-hosted auth: pending email, password-reset, magic-link and MFA codes (service_role only).';
comment on column identity.verifications.identifier is 'What is being verified, usually an email address.';
comment on column identity.verifications.value_hash is 'sha256 hex of the code sent; the code itself is never stored.';
{{ m.table_grants('identity.verifications', none) }}
{% endif %}
