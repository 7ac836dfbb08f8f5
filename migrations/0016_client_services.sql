-- 0016 client_services (issue 9, seed 000): the schema of seed 000's
-- onboarding guide, as a compatibility layer over the real domains. It
-- holds no table and no data of its own: its five views
-- (functions/0016_client_services.sql) read tenancy, iam, usage and
-- billing with the caller's rights (security_invoker), and their INSTEAD
-- OF triggers write through the same functions and row-level security as
-- every other client.
-- tenantdb: optional — no other change depends on it; a project that does
-- not want it migrates with `--without 0016_client_services`.

create schema client_services;
comment on schema client_services is 'tenantdb client_services: seed 000''s organizations, accounts, usage_logs, billing_records and transactions as security_invoker views over tenancy, iam, usage and billing (a compatibility schema: one source of truth, no data of its own).';
revoke all on schema client_services from public;
grant usage on schema client_services to authenticated, service_role;
