-- 0014 projects (issue 12, seed 002): the reference tenant resource.
--   * app.projects: seed 002's projects (its tenant_projects), the table an
--     app team copies for its own documents, bookings or venues.
--   * catalog.meters.aggregation: a meter either sums quantities over a
--     billing period (api calls) or counts live things (projects, seats);
--     usage.live_counts holds the live count of each counted meter.
{% import 'sql/macros.sql' as m with context %}

create schema app;
comment on schema app is 'tenantdb app: the application''s own tenant tables (projects: the reference one to copy).';
revoke all on schema app from public;
grant usage on schema app to authenticated, service_role;

create table app.projects (
  organization_id uuid not null references tenancy.organizations (id) on delete cascade,
  id uuid not null default gen_random_uuid(),
  title text not null,
  description text,
  created_by uuid default auth.uid(),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (organization_id, id),
  constraint projects_title_length check (length(btrim(title)) between 1 and 200),
  constraint projects_description_length check (length(description) <= 10000)
);
create index projects_recent on app.projects (organization_id, created_at desc);
comment on table app.projects is 'Seed 002''s projects: created with project.create, edited with project.update, deleted with project.delete; counted against the plan''s max_projects at commit and metered once each (meter projects).';
comment on column app.projects.created_by is 'The user who created it (auth.uid()); not a foreign key, the project outlives the account.';
{{ m.table_grants('app.projects', 'select, delete') }}
grant insert (organization_id, id, title, description), update (title, description) on app.projects to authenticated;

alter table catalog.meters add column aggregation text not null default 'sum';
alter table catalog.meters add constraint meters_aggregation_known check (aggregation in ('sum', 'count'));
alter table catalog.meters add constraint meters_aggregation_length check (length(aggregation) <= 200);
comment on column catalog.meters.aggregation is 'sum: usage is the quantities of a billing period added up (api calls); count: usage is how many live things exist (projects), kept by the table''s gate_and_meter trigger; a period is billed on its highest count.';

create table usage.live_counts (
  organization_id uuid not null references tenancy.organizations (id) on delete cascade,
  meter_key text not null references catalog.meters (key) on update cascade,
  quantity bigint not null default 0,
  updated_at timestamptz not null default now(),
  primary key (organization_id, meter_key),
  constraint live_counts_not_negative check (quantity >= 0),
  constraint live_counts_meter_key_length check (length(meter_key) <= 200)
);
create index live_counts_meter on usage.live_counts (meter_key);
comment on table usage.live_counts is 'How many live things a count meter counts per organization (projects), kept at commit by the metered table''s trigger. Deleting one gives its slot back.';
{{ m.table_grants('usage.live_counts', 'select') }}
