-- 0004 tenancy: organizations, memberships, invitations.
-- organizations is a reference table under Citus (global unique slug);
-- memberships and invitations are distributed by organization_id.
{% import 'sql/macros.sql' as m with context %}

create table tenancy.organizations (
  id uuid primary key default gen_random_uuid(),
  name text not null,
  slug text not null,
  org_type text not null default 'business',
  is_personal boolean not null default false,
  personal_owner_id uuid references identity.users (id) on delete cascade,
  status text not null default 'active',
  description text,
  avatar_url text,
  settings jsonb not null default '{}'::jsonb,
  metadata jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint organizations_slug_unique unique (slug),
  constraint organizations_slug_format check (slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
  constraint organizations_name_not_blank check (length(btrim(name)) between 1 and 200),
  constraint organizations_org_type_known check (org_type in ('personal', 'business', 'family', 'education', 'other')),
  constraint organizations_personal_is_typed check (is_personal = (org_type = 'personal')),
  constraint organizations_personal_has_owner check (is_personal = (personal_owner_id is not null)),
  constraint organizations_status_known check (status in ('active', 'suspended', 'deleted')),
  constraint organizations_settings_is_object check (jsonb_typeof(settings) = 'object'),
  constraint organizations_metadata_is_object check (jsonb_typeof(metadata) = 'object')
);
create unique index organizations_one_personal_per_user
  on tenancy.organizations (personal_owner_id) where is_personal;
comment on table tenancy.organizations is 'The tenant: every row of tenant data belongs to one organization. Owners are the memberships with role tenant_owner.';
comment on column tenancy.organizations.slug is 'URL name: lower-case letters, digits and inner hyphens, at most 63 characters, unique.';
comment on column tenancy.organizations.is_personal is 'The workspace created for a user at signup; exactly one per user.';
comment on column tenancy.organizations.personal_owner_id is 'For a personal organization, the user it was made for; null otherwise.';
comment on column tenancy.organizations.status is 'active, suspended (read-only for members) or deleted (kept for the GDPR trail).';
{{ m.table_grants('tenancy.organizations', 'select') }}
-- Members with tenant.update edit the descriptive fields; type, status and
-- personal ownership change only through functions.
grant update (name, slug, description, avatar_url, settings) on tenancy.organizations to authenticated;

create table tenancy.memberships (
  organization_id uuid not null references tenancy.organizations (id) on delete cascade,
  user_id uuid not null references identity.users (id) on delete cascade,
  role_key text not null,
  role_is_system boolean not null default false,
  member_type text not null default 'member',
  status text not null default 'active',
  invited_by uuid references identity.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (organization_id, user_id),
  constraint memberships_role_is_tenant_role check (not role_is_system),
  constraint memberships_role_fk foreign key (role_key, role_is_system)
    references iam.roles (key, is_system) on update cascade,
  constraint memberships_member_type_known check (member_type in ('member', 'guest')),
  constraint memberships_status_known check (status in ('active', 'suspended'))
);
create index memberships_user_id on tenancy.memberships (user_id);
create index memberships_role on tenancy.memberships (role_key, role_is_system);
create index memberships_invited_by on tenancy.memberships (invited_by);
comment on table tenancy.memberships is 'A user''s place in an organization, with one tenant role. System roles cannot be held here (memberships_role_is_tenant_role with memberships_role_fk).';
comment on column tenancy.memberships.role_is_system is 'Always false; with memberships_role_fk it admits only tenant roles.';
comment on column tenancy.memberships.member_type is 'member (a paid seat) or guest (free).';

create table tenancy.invitations (
  organization_id uuid not null references tenancy.organizations (id) on delete cascade,
  id uuid not null default gen_random_uuid(),
  email text not null,
  role_key text not null,
  role_is_system boolean not null default false,
  token_hash text not null,
  invited_by uuid references identity.users (id) on delete set null,
  expires_at timestamptz not null default now() + interval '7 days',
  accepted_at timestamptz,
  accepted_by uuid references identity.users (id) on delete set null,
  revoked_at timestamptz,
  revoked_by uuid references identity.users (id) on delete set null,
  created_at timestamptz not null default now(),
  primary key (organization_id, id),
  constraint invitations_token_hash_unique unique (organization_id, token_hash),
  constraint invitations_token_hash_is_sha256 check (token_hash ~ '^[0-9a-f]{64}$'),
  constraint invitations_role_is_tenant_role check (not role_is_system),
  constraint invitations_role_fk foreign key (role_key, role_is_system)
    references iam.roles (key, is_system) on update cascade,
  constraint invitations_email_format check (email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$'),
  constraint invitations_settled_once check (accepted_at is null or revoked_at is null),
  constraint invitations_acceptance_complete check ((accepted_at is null) = (accepted_by is null))
);
create unique index invitations_one_pending_per_email
  on tenancy.invitations (organization_id, lower(email)) where accepted_at is null and revoked_at is null;
create index invitations_token_hash on tenancy.invitations (token_hash);
create index invitations_role on tenancy.invitations (role_key, role_is_system);
create index invitations_invited_by on tenancy.invitations (invited_by);
create index invitations_accepted_by on tenancy.invitations (accepted_by);
create index invitations_revoked_by on tenancy.invitations (revoked_by);
comment on table tenancy.invitations is 'An invitation to join an organization, bound to one email address. Only the sha256 of its token is stored.';
comment on column tenancy.invitations.token_hash is 'sha256 hex of the token handed to the invitee; the token itself is returned once by invite_member and never stored.';

{{ m.table_grants('tenancy.memberships', 'select') }}
{{ m.table_grants('tenancy.invitations', 'select') }}
