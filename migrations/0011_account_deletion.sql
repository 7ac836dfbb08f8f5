-- 0011 account deletion: a user who has touched every domain can delete
-- their account (Supabase's admin API deletes the auth.users row), and
-- every record that must outlive it does (issue 10).

-- An accepted invitation keeps its acceptance time when the acceptor's
-- account is deleted (accepted_by is set to null by the foreign key).
alter table tenancy.invitations drop constraint invitations_acceptance_complete;
alter table tenancy.invitations add constraint invitations_acceptance_complete
  check (accepted_by is null or accepted_at is not null);
comment on constraint invitations_acceptance_complete on tenancy.invitations is
  'An acceptor implies an acceptance time; the acceptor may be gone (account deleted).';

-- A personal organization with financial records outlives its owner's
-- account: it is kept, deleted and ownerless (functions/0011_*).
alter table tenancy.organizations drop constraint organizations_personal_has_owner;
alter table tenancy.organizations add constraint organizations_personal_has_owner
  check (not is_personal or personal_owner_id is not null or status = 'deleted');
alter table tenancy.organizations add constraint organizations_owner_only_if_personal
  check (is_personal or personal_owner_id is null);

-- Audit rows name people; they are history, not references: the account
-- can go, the row (append-only) keeps the id.
alter table audit.impersonation_sessions drop constraint impersonation_sessions_impersonator_id_fkey;
alter table audit.impersonation_sessions drop constraint impersonation_sessions_target_user_id_fkey;
alter table audit.impersonation_endings drop constraint impersonation_endings_ended_by_fkey;
alter table audit.break_glass_events drop constraint break_glass_events_user_id_fkey;
alter table audit.break_glass_events drop constraint break_glass_events_grant_id_fkey;
alter table audit.incidents drop constraint incidents_opened_by_fkey;
alter table audit.incident_updates drop constraint incident_updates_by_user_fkey;
comment on column audit.impersonation_sessions.impersonator_id is 'The platform member (a user id, kept after the account is deleted).';
comment on column audit.impersonation_sessions.target_user_id is 'The impersonated user (a user id, kept after the account is deleted).';
comment on column audit.break_glass_events.grant_id is 'The break-glass grant activated (kept after the grant is deleted with its holder).';
