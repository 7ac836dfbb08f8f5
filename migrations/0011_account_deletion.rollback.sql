-- Restores the constraints 0011 relaxed or dropped; refused (by Postgres)
-- where rows made since depend on the relaxation.
alter table audit.incident_updates add constraint incident_updates_by_user_fkey foreign key (by_user) references identity.users (id);
alter table audit.incidents add constraint incidents_opened_by_fkey foreign key (opened_by) references identity.users (id);
alter table audit.break_glass_events add constraint break_glass_events_grant_id_fkey foreign key (grant_id) references iam.system_role_grants (id);
alter table audit.break_glass_events add constraint break_glass_events_user_id_fkey foreign key (user_id) references identity.users (id);
alter table audit.impersonation_endings add constraint impersonation_endings_ended_by_fkey foreign key (ended_by) references identity.users (id);
alter table audit.impersonation_sessions add constraint impersonation_sessions_target_user_id_fkey foreign key (target_user_id) references identity.users (id);
alter table audit.impersonation_sessions add constraint impersonation_sessions_impersonator_id_fkey foreign key (impersonator_id) references identity.users (id);
alter table tenancy.organizations drop constraint organizations_owner_only_if_personal;
alter table tenancy.organizations drop constraint organizations_personal_has_owner;
alter table tenancy.organizations add constraint organizations_personal_has_owner check (is_personal = (personal_owner_id is not null));
alter table tenancy.invitations drop constraint invitations_acceptance_complete;
alter table tenancy.invitations add constraint invitations_acceptance_complete check ((accepted_at is null) = (accepted_by is null));
