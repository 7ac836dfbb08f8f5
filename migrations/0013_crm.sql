-- 0013 crm (seed 004): the home-services CRM.
--   * A global identity layer shared by every organization: people, their
--     emails and phones (E.164), addresses and marketing consents, and the
--     links from signed-up users to the person with their verified email.
--     An organization sees a person only while the person is its client.
--   * Per organization: clients, client settings, services, jobs, invoices
--     and their lines, payments, campaigns and their sends, reminders.
--     Every foreign key between tenant tables includes organization_id;
--     a job's address belongs to the job's client.
-- Money is bigint minor units (the seed's *_cents columns: cents for USD,
-- yen for JPY) with an ISO 4217 currency: a client is billed in one
-- currency (org_clients.currency), its invoices and payments carry it.
{% import 'sql/macros.sql' as m with context %}

-- pg_trgm (search_clients), btree_gist and btree_gin (indexes over the
-- organization and a trigram column) live in the schema Supabase keeps
-- extensions in. What this
-- change creates (schema, extensions) it marks, and its rollback drops.
do $ext$
declare
  e record;
begin
  if to_regnamespace('extensions') is null then
    create schema extensions;
    comment on schema extensions is 'Extensions (created by tenantdb 0013_crm; Supabase''s convention).';
  end if;
  begin
    grant usage on schema extensions to anon, authenticated, service_role;
  exception when insufficient_privilege then
    null;  -- Supabase: its extensions schema is granted already
  end;
  for e in select x.name, n.nspname
             from (values ('pg_trgm'), ('btree_gist'), ('btree_gin')) as x (name)
             left join pg_catalog.pg_extension pe on pe.extname = x.name
             left join pg_catalog.pg_namespace n on n.oid = pe.extnamespace loop
    if e.nspname is null then
      execute format('create extension %I with schema extensions', e.name);
      begin
        execute format('comment on extension %I is %L', e.name, 'installed by tenantdb 0013_crm');
      exception when insufficient_privilege then
        null;  -- Supabase creates it as its admin role: unmarked, the rollback keeps it
      end;
    elsif e.nspname <> 'extensions' then
      raise exception 'extension % is installed in schema %; tenantdb''s CRM expects it in schema extensions', e.name, e.nspname
        using errcode = '55000', hint = format('alter extension %s set schema extensions', e.name);
    end if;
  end loop;
end
$ext$;

create schema crm;
comment on schema crm is 'tenantdb crm: people and contact points shared across organizations; each organization''s clients, services, jobs, invoices, payments, campaigns and reminders.';
revoke all on schema crm from public;
grant usage on schema crm to authenticated, service_role;

-- Global identity layer ---------------------------------------------------------

create table crm.people (
  id uuid primary key default gen_random_uuid(),
  first_name text,
  last_name text,
  primary_email text,
  primary_phone_e164 text,
  avatar_url text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint people_first_name_length check (length(first_name) <= 200),
  constraint people_last_name_length check (length(last_name) <= 200),
  constraint people_primary_email_length check (length(primary_email) <= 254),
  constraint people_primary_phone_e164_length check (length(primary_phone_e164) <= 16),
  constraint people_avatar_url_length check (length(avatar_url) <= 4096)
);
comment on table crm.people is 'A person known to one or more organizations (a client, a lead). Shared: one row per human, deduplicated by email and phone; written only by functions (upsert_person, propagate_contact_update). An organization sees a person while the person is its client.';
comment on column crm.people.first_name is '@personal';
comment on column crm.people.last_name is '@personal';
comment on column crm.people.primary_email is '@personal The primary row of person_emails, kept by trigger.';
comment on column crm.people.primary_phone_e164 is '@personal The primary row of person_phones, kept by trigger.';
comment on column crm.people.avatar_url is '@personal';

create table crm.person_emails (
  id uuid primary key default gen_random_uuid(),
  person_id uuid not null references crm.people (id) on delete cascade,
  email text not null,
  is_primary boolean not null default false,
  created_at timestamptz not null default now(),
  constraint person_emails_email_unique unique (email),
  constraint person_emails_email_normalized check (email = lower(btrim(email)) and email ~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$'),
  constraint person_emails_email_length check (length(email) <= 254)
);
create unique index person_emails_one_primary on crm.person_emails (person_id) where is_primary;
create index person_emails_person on crm.person_emails (person_id);
comment on table crm.person_emails is 'Every email of a person, lower-cased; an email belongs to one person; at most one primary.';
comment on column crm.person_emails.email is '@personal';

create table crm.person_phones (
  id uuid primary key default gen_random_uuid(),
  person_id uuid not null references crm.people (id) on delete cascade,
  phone_e164 text not null,
  is_primary boolean not null default false,
  created_at timestamptz not null default now(),
  constraint person_phones_phone_unique unique (phone_e164),
  constraint person_phones_e164 check (phone_e164 ~ '^\+[1-9][0-9]{7,14}$'),
  constraint person_phones_phone_e164_length check (length(phone_e164) <= 16)
);
create unique index person_phones_one_primary on crm.person_phones (person_id) where is_primary;
create index person_phones_person on crm.person_phones (person_id);
comment on table crm.person_phones is 'Every phone of a person in E.164 (+ country code, up to 15 digits); a number belongs to one person; at most one primary.';
comment on column crm.person_phones.phone_e164 is '@personal';

create table crm.addresses (
  id uuid primary key default gen_random_uuid(),
  person_id uuid not null references crm.people (id) on delete cascade,
  label text,
  address1 text not null,
  address2 text,
  city text,
  state text,
  postal text,
  country char(2) not null default 'US',
  lat numeric(9, 6),
  lng numeric(9, 6),
  created_at timestamptz not null default now(),
  constraint addresses_person_id_id unique (person_id, id),
  constraint addresses_lat_range check (lat between -90 and 90),
  constraint addresses_lng_range check (lng between -180 and 180),
  constraint addresses_lat_lng_pair check ((lat is null) = (lng is null)),
  constraint addresses_country_iso3166 check (country ~ '^[A-Z]{2}$'),
  constraint addresses_label_length check (length(label) <= 200),
  constraint addresses_address1_length check (length(address1) <= 200),
  constraint addresses_address2_length check (length(address2) <= 200),
  constraint addresses_city_length check (length(city) <= 200),
  constraint addresses_state_length check (length(state) <= 200),
  constraint addresses_postal_length check (length(postal) <= 200)
);
comment on table crm.addresses is 'A person''s addresses (home, rental, office); jobs take place at one of the client''s addresses.';
comment on column crm.addresses.country is '@personal ISO 3166-1 alpha-2.';
comment on column crm.addresses.label is '@personal';
comment on column crm.addresses.address1 is '@personal';
comment on column crm.addresses.address2 is '@personal';
comment on column crm.addresses.city is '@personal';
comment on column crm.addresses.state is '@personal';
comment on column crm.addresses.postal is '@personal';
comment on column crm.addresses.lat is '@personal';
comment on column crm.addresses.lng is '@personal';

create table crm.marketing_consents (
  id uuid primary key default gen_random_uuid(),
  person_id uuid not null references crm.people (id) on delete cascade,
  channel text not null,
  opted_in boolean not null,
  source text not null,
  recorded_by_organization_id uuid references tenancy.organizations (id) on delete set null,
  recorded_by uuid,
  occurred_at timestamptz not null default clock_timestamp(),
  constraint marketing_consents_channel_known check (channel in ('email', 'sms')),
  constraint marketing_consents_source_known check (source in ('default', 'person', 'organization')),
  constraint marketing_consents_source_length check (length(source) <= 200)
);
create index marketing_consents_person_channel on crm.marketing_consents (person_id, channel, occurred_at desc);
create index marketing_consents_organization on crm.marketing_consents (recorded_by_organization_id);
comment on table crm.marketing_consents is 'Seed 004''s consents, with history: each email or SMS opt-in and opt-out of a person, append-only. For an organization, the person''s own opt-out wins; otherwise the latest decision of the person or that organization counts (source default: the not-opted-in rows upsert_person writes). Campaigns send only to people opted in for them.';
comment on column crm.marketing_consents.recorded_by_organization_id is 'The organization that recorded the decision (null: the person themself, or the back end).';
comment on column crm.marketing_consents.recorded_by is 'The user who recorded it; not a foreign key: the evidence outlives the account.';

create table crm.user_person_links (
  user_id uuid not null references identity.users (id) on delete cascade,
  person_id uuid not null references crm.people (id) on delete cascade,
  linked_via text not null,
  linked_at timestamptz not null default now(),
  primary key (user_id, person_id),
  constraint user_person_links_via_known check (linked_via in ('signup', 'email_confirmed'))
);
create index user_person_links_person on crm.user_person_links (person_id);
comment on table crm.user_person_links is 'A signed-up user linked to the person with the same verified email (seed 004''s homeowner onboarding): the user sees that person''s record and may correct it.';

-- Per organization ----------------------------------------------------------------

create table crm.org_clients (
  organization_id uuid not null references tenancy.organizations (id) on delete cascade,
  id uuid not null default gen_random_uuid(),
  person_id uuid not null references crm.people (id),
  status text not null default 'lead',
  tags text[] not null default '{}',
  currency char(3) not null default 'USD',
  ltv_cents bigint not null default 0,
  notes jsonb not null default '[]',
  default_address_id uuid,
  search_name text not null default '',
  search_contact text not null default '',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (organization_id, id),
  constraint org_clients_one_per_person unique (organization_id, person_id),
  constraint org_clients_id_person unique (organization_id, id, person_id),
  constraint org_clients_id_currency unique (organization_id, id, currency),
  constraint org_clients_default_address_of_person foreign key (person_id, default_address_id)
    references crm.addresses (person_id, id),
  constraint org_clients_status_known check (status in ('lead', 'active', 'inactive')),
  constraint org_clients_currency_iso4217 check (currency ~ '^[A-Z]{3}$'),
  constraint org_clients_tags_bounded check (cardinality(tags) <= 50 and array_position(tags, null) is null),
  constraint org_clients_notes_array check (jsonb_typeof(notes) = 'array'),
  constraint org_clients_notes_length check (pg_column_size(notes) <= 65536),
  constraint org_clients_search_name_length check (length(search_name) <= 1000),
  constraint org_clients_search_contact_length check (length(search_contact) <= 1000)
);
create index org_clients_person on crm.org_clients (person_id);
create index org_clients_default_address on crm.org_clients (person_id, default_address_id);
-- search_clients: names by trigram distance (GiST, nearest first), names
-- by prefix (B-tree), email and phone fragments (GIN); the timeline finds
-- a client by id; the list page and client_stats read one organization.
create index org_clients_search_name_trgm on crm.org_clients using gist (organization_id, search_name extensions.gist_trgm_ops (siglen = 256));
create index org_clients_search_name_prefix on crm.org_clients (organization_id, search_name text_pattern_ops);
create index org_clients_search_contact_trgm on crm.org_clients using gin (organization_id, search_contact extensions.gin_trgm_ops);
create index org_clients_id on crm.org_clients (id);
create index org_clients_recent on crm.org_clients (organization_id, created_at desc);
create index org_clients_stats on crm.org_clients (organization_id, status) include (currency, ltv_cents);
comment on table crm.org_clients is 'A person as one organization''s client: its own status, tags, notes and lifetime value, private to the organization. One row per organization and person.';
comment on column crm.org_clients.currency is 'ISO 4217: the client is invoiced and pays in this currency; lifetime value is in it.';
comment on column crm.org_clients.ltv_cents is 'Lifetime value in minor units: succeeded payments minus refunds, kept by the database (never written by hand).';
comment on column crm.org_clients.notes is '@personal The organization''s notes on the client: a JSON array of {id, text, created_at, author_id} (ids and times filled by trigger); the timeline shows each.';
comment on column crm.org_clients.search_name is 'The person''s first and last name, lower-cased, for search_clients. Kept by trigger from crm.people.';
comment on column crm.org_clients.search_contact is 'The person''s primary email and phone digits, lower-cased, for search_clients. Kept by trigger from crm.people.';

create table crm.org_client_settings (
  organization_id uuid not null,
  org_client_id uuid not null,
  pricing_tier text,
  tax_rate numeric(7, 6) not null default 0,
  custom_fields jsonb not null default '{}',
  updated_at timestamptz not null default now(),
  primary key (organization_id, org_client_id),
  constraint org_client_settings_client_fk foreign key (organization_id, org_client_id)
    references crm.org_clients (organization_id, id) on delete cascade,
  constraint org_client_settings_tax_rate_range check (tax_rate >= 0 and tax_rate < 1),
  constraint org_client_settings_custom_fields_object check (jsonb_typeof(custom_fields) = 'object'),
  constraint org_client_settings_pricing_tier_length check (length(pricing_tier) <= 200),
  constraint org_client_settings_custom_fields_length check (pg_column_size(custom_fields) <= 65536)
);
comment on table crm.org_client_settings is 'Per-client settings of one organization: pricing tier, tax rate, custom fields.';
comment on column crm.org_client_settings.custom_fields is '@personal The organization''s own fields on the client (a birthday, a gate code).';
comment on column crm.org_client_settings.tax_rate is 'A fraction: 0.0825 is 8.25 %.';

create table crm.services (
  organization_id uuid not null references tenancy.organizations (id) on delete cascade,
  id uuid not null default gen_random_uuid(),
  name text not null,
  description text,
  default_price_cents bigint not null default 0,
  currency char(3) not null default 'USD',
  active boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (organization_id, id),
  constraint services_name_unique unique (organization_id, name),
  constraint services_price_not_negative check (default_price_cents >= 0),
  constraint services_currency_iso4217 check (currency ~ '^[A-Z]{3}$'),
  constraint services_name_length check (length(name) between 1 and 200),
  constraint services_description_length check (length(description) <= 10000)
);
comment on table crm.services is 'What the business sells (lawn mowing, AC repair), with a default price in minor units.';

create table crm.jobs (
  organization_id uuid not null references tenancy.organizations (id) on delete cascade,
  id uuid not null default gen_random_uuid(),
  org_client_id uuid not null,
  person_id uuid not null,
  service_id uuid,
  address_id uuid,
  start_at timestamptz not null,
  end_at timestamptz,
  status text not null default 'scheduled',
  price_cents bigint not null,
  notes text,
  created_by uuid,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (organization_id, id),
  constraint jobs_client_fk foreign key (organization_id, org_client_id, person_id)
    references crm.org_clients (organization_id, id, person_id),
  constraint jobs_service_fk foreign key (organization_id, service_id)
    references crm.services (organization_id, id),
  constraint jobs_address_of_client foreign key (person_id, address_id)
    references crm.addresses (person_id, id),
  constraint jobs_end_after_start check (end_at > start_at),
  constraint jobs_status_known check (status in ('scheduled', 'in_progress', 'completed', 'canceled', 'blocked')),
  constraint jobs_price_not_negative check (price_cents >= 0),
  constraint jobs_notes_length check (length(notes) <= 10000)
);
create index jobs_client on crm.jobs (organization_id, org_client_id, person_id, created_at desc);
create index jobs_service on crm.jobs (organization_id, service_id);
create index jobs_address on crm.jobs (person_id, address_id);
create index jobs_schedule on crm.jobs (organization_id, start_at);
create index jobs_upcoming on crm.jobs (start_at) where status = 'scheduled';
comment on table crm.jobs is 'A job booked for a client: scheduled -> in_progress -> completed, or canceled / blocked; other moves are refused. Takes place at one of the client''s addresses.';
comment on column crm.jobs.person_id is 'The client''s person (filled from org_client_id): ties the address to the client.';
comment on column crm.jobs.price_cents is 'Minor units of the client''s currency.';
comment on column crm.jobs.notes is '@personal Free text about the visit (gate code, dog in the yard).';
comment on column crm.jobs.created_by is 'The user who booked it; not a foreign key, the record outlives the account.';

create table crm.invoices (
  organization_id uuid not null references tenancy.organizations (id) on delete cascade,
  id uuid not null default gen_random_uuid(),
  org_client_id uuid not null,
  currency char(3) not null,
  total_cents bigint not null default 0,
  status text not null default 'draft',
  due_date date,
  notes text,
  issued_at timestamptz,
  paid_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (organization_id, id),
  constraint invoices_id_currency unique (organization_id, id, currency),
  constraint invoices_client_fk foreign key (organization_id, org_client_id, currency)
    references crm.org_clients (organization_id, id, currency),
  constraint invoices_status_known check (status in ('draft', 'open', 'paid', 'void')),
  constraint invoices_total_not_negative check (total_cents >= 0),
  constraint invoices_open_has_due_date check (status = 'draft' or due_date is not null),
  constraint invoices_issued_stamped check ((status = 'draft') = (issued_at is null)),
  constraint invoices_paid_stamped check ((status = 'paid') = (paid_at is not null)),
  constraint invoices_notes_length check (length(notes) <= 10000)
);
create index invoices_client on crm.invoices (organization_id, org_client_id, currency, created_at desc);
create index invoices_due on crm.invoices (due_date) where status = 'open';
comment on table crm.invoices is 'A client''s invoice: draft -> open -> paid, or void. The total is the sum of its lines, kept by trigger; lines change only while draft. Paid when succeeded payments reach the total.';
comment on column crm.invoices.notes is '@personal';
comment on column crm.invoices.total_cents is 'Sum of the lines'' amounts in minor units (kept by trigger).';

create table crm.invoice_lines (
  organization_id uuid not null,
  invoice_id uuid not null,
  id uuid not null default gen_random_uuid(),
  description text not null,
  quantity integer not null default 1,
  unit_price_cents bigint not null,
  amount_cents bigint generated always as (quantity * unit_price_cents) stored,
  job_id uuid,
  service_id uuid,
  created_at timestamptz not null default now(),
  primary key (organization_id, invoice_id, id),
  constraint invoice_lines_invoice_fk foreign key (organization_id, invoice_id)
    references crm.invoices (organization_id, id) on delete cascade,
  constraint invoice_lines_job_fk foreign key (organization_id, job_id) references crm.jobs (organization_id, id),
  constraint invoice_lines_service_fk foreign key (organization_id, service_id) references crm.services (organization_id, id),
  constraint invoice_lines_quantity_positive check (quantity between 1 and 1000000),
  constraint invoice_lines_unit_price_bounded check (unit_price_cents between 0 and 100000000000),
  constraint invoice_lines_description_length check (length(description) between 1 and 10000)
);
create index invoice_lines_job on crm.invoice_lines (organization_id, job_id);
create index invoice_lines_service on crm.invoice_lines (organization_id, service_id);
comment on table crm.invoice_lines is 'The lines of a CRM invoice; amount = quantity x unit price, in the invoice''s currency.';

create table crm.payments (
  organization_id uuid not null,
  id uuid not null default gen_random_uuid(),
  invoice_id uuid not null,
  currency char(3) not null,
  amount_cents bigint not null,
  status text not null default 'pending',
  method text,
  provider_payment_id text,
  captured_at timestamptz,
  refunded_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (organization_id, id),
  constraint payments_invoice_fk foreign key (organization_id, invoice_id, currency)
    references crm.invoices (organization_id, id, currency) on delete cascade,
  constraint payments_once_per_provider_payment unique (organization_id, provider_payment_id),
  constraint payments_amount_positive check (amount_cents > 0),
  constraint payments_status_known check (status in ('pending', 'succeeded', 'failed', 'refunded')),
  constraint payments_captured_stamped check ((status in ('succeeded', 'refunded')) = (captured_at is not null)),
  constraint payments_refund_stamped check ((status = 'refunded') = (refunded_at is not null)),
  constraint payments_method_length check (length(method) <= 200),
  constraint payments_provider_payment_id_length check (length(provider_payment_id) <= 200)
);
create index payments_invoice on crm.payments (organization_id, invoice_id, currency);
comment on table crm.payments is 'Money received against an invoice: pending -> succeeded -> refunded, or failed. Pending and succeeded payments never exceed the invoice''s total; succeeded ones count towards the client''s lifetime value.';

create table crm.campaigns (
  organization_id uuid not null references tenancy.organizations (id) on delete cascade,
  id uuid not null default gen_random_uuid(),
  channel text not null,
  name text not null,
  segment jsonb not null default '{}',
  template jsonb not null default '{}',
  status text not null default 'draft',
  scheduled_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (organization_id, id),
  constraint campaigns_channel_known check (channel in ('email', 'sms')),
  constraint campaigns_status_known check (status in ('draft', 'queued', 'canceled')),
  constraint campaigns_segment_shape check (jsonb_typeof(segment) = 'object' and segment - 'status' - 'tags' = '{}'::jsonb
    and jsonb_typeof(coalesce(segment -> 'status', '[]')) = 'array' and jsonb_typeof(coalesce(segment -> 'tags', '[]')) = 'array'),
  constraint campaigns_template_object check (jsonb_typeof(template) = 'object'),
  constraint campaigns_name_length check (length(name) between 1 and 200),
  constraint campaigns_segment_length check (pg_column_size(segment) <= 65536),
  constraint campaigns_template_length check (pg_column_size(template) <= 65536)
);
create index campaigns_id on crm.campaigns (id);
comment on table crm.campaigns is 'An email or SMS campaign to a segment of the organization''s clients; queue_campaign_sends turns it into one send per opted-in person.';
comment on column crm.campaigns.segment is '{"status": [client statuses], "tags": [any of these tags]}; an absent key does not narrow.';

create table crm.campaign_sends (
  organization_id uuid not null,
  campaign_id uuid not null,
  id uuid not null default gen_random_uuid(),
  org_client_id uuid not null,
  person_id uuid not null,
  status text not null default 'queued',
  error text,
  attempts integer not null default 0,
  claimed_by text,
  lease_until timestamptz,
  sent_at timestamptz,
  created_at timestamptz not null default now(),
  primary key (organization_id, id),
  constraint campaign_sends_once_per_person unique (organization_id, campaign_id, person_id),
  constraint campaign_sends_campaign_fk foreign key (organization_id, campaign_id)
    references crm.campaigns (organization_id, id) on delete cascade,
  constraint campaign_sends_client_fk foreign key (organization_id, org_client_id, person_id)
    references crm.org_clients (organization_id, id, person_id) on delete cascade,
  constraint campaign_sends_status_known check (status in ('queued', 'sent', 'failed')),
  constraint campaign_sends_sent_stamped check ((status = 'sent') = (sent_at is not null)),
  constraint campaign_sends_error_length check (length(error) <= 10000),
  constraint campaign_sends_claimed_by_length check (length(claimed_by) <= 200)
);
create index campaign_sends_client on crm.campaign_sends (organization_id, org_client_id, person_id);
create index campaign_sends_queued on crm.campaign_sends (created_at) where status = 'queued';
create index campaign_sends_id on crm.campaign_sends (id);
comment on column crm.campaign_sends.error is '@personal The provider''s answer (may hold the address).';
comment on table crm.campaign_sends is 'One message of a campaign to one person (once per person), queued until a sending worker claims it.';

create table crm.reminders (
  organization_id uuid not null,
  id uuid not null default gen_random_uuid(),
  org_client_id uuid not null,
  type text not null,
  slot text not null,
  job_id uuid,
  invoice_id uuid,
  subject_id uuid generated always as (coalesce(job_id, invoice_id)) stored,
  send_at timestamptz not null,
  payload jsonb not null default '{}',
  status text not null default 'pending',
  attempts integer not null default 0,
  claimed_by text,
  lease_until timestamptz,
  sent_at timestamptz,
  error text,
  created_at timestamptz not null default now(),
  primary key (organization_id, id),
  constraint reminders_client_fk foreign key (organization_id, org_client_id)
    references crm.org_clients (organization_id, id) on delete cascade,
  constraint reminders_job_fk foreign key (organization_id, job_id) references crm.jobs (organization_id, id) on delete cascade,
  constraint reminders_invoice_fk foreign key (organization_id, invoice_id) references crm.invoices (organization_id, id) on delete cascade,
  constraint reminders_type_known check (type in ('job_upcoming', 'invoice_due')),
  constraint reminders_slot_of_type check ((type, slot) in (('job_upcoming', 'job_24h'), ('job_upcoming', 'job_2h'),
                                                            ('invoice_due', 'invoice_2d'), ('invoice_due', 'invoice_due_day'))),
  constraint reminders_subject check ((type = 'job_upcoming') = (job_id is not null) and (type = 'invoice_due') = (invoice_id is not null)),
  constraint reminders_status_known check (status in ('pending', 'sent', 'failed', 'canceled')),
  constraint reminders_sent_stamped check ((status = 'sent') = (sent_at is not null)),
  constraint reminders_payload_length check (pg_column_size(payload) <= 65536),
  constraint reminders_error_length check (length(error) <= 10000),
  constraint reminders_claimed_by_length check (length(claimed_by) <= 200)
);
create unique index reminders_once_per_subject_slot on crm.reminders (organization_id, subject_id, slot);
create index reminders_client on crm.reminders (organization_id, org_client_id);
create index reminders_job on crm.reminders (organization_id, job_id);
create index reminders_invoice on crm.reminders (organization_id, invoice_id);
create index reminders_due on crm.reminders (send_at) where status = 'pending';
create index reminders_id on crm.reminders (id);
comment on table crm.reminders is 'Messages the business sends its client: 24 h and 2 h before a scheduled job, 2 days before and on the due date of an open invoice. Created by schedule_reminders (and create_job_with_optional_new_client); a sending worker claims them (claim_reminders) and reports back (complete_reminder).';
comment on column crm.reminders.subject_id is 'The job or invoice reminded of: one reminder per subject and slot.';
comment on column crm.reminders.error is '@personal The provider''s answer (may hold the number).';
comment on column crm.reminders.lease_until is 'A claim expires then: a worker that died does not keep its reminders.';

-- Enumerated text columns are bounded like every other text column.
{% for t, c in [('marketing_consents', 'channel'), ('user_person_links', 'linked_via'), ('org_clients', 'status'),
                ('jobs', 'status'), ('invoices', 'status'), ('payments', 'status'), ('campaigns', 'channel'),
                ('campaigns', 'status'), ('campaign_sends', 'status'), ('reminders', 'type'), ('reminders', 'slot'),
                ('reminders', 'status')] %}
alter table crm.{{ t }} add constraint {{ t }}_{{ c }}_length check (length({{ c }}) <= 200);
{% endfor %}

{% for t in ['people', 'person_emails', 'person_phones', 'addresses', 'marketing_consents', 'user_person_links',
             'org_clients', 'org_client_settings', 'services', 'jobs', 'invoices', 'invoice_lines', 'payments',
             'campaigns', 'campaign_sends', 'reminders'] %}
{{ m.table_grants('crm.' ~ t, 'select') }}
{% endfor %}
-- What members write directly (RLS decides where): lifetime value,
-- search text, totals and stamps are the database's.
grant insert (organization_id, person_id, status, tags, currency, notes, default_address_id),
      update (status, tags, currency, notes, default_address_id), delete on crm.org_clients to authenticated;
grant insert, update (pricing_tier, tax_rate, custom_fields), delete on crm.org_client_settings to authenticated;
grant insert (organization_id, id, name, description, default_price_cents, currency, active),
      update (name, description, default_price_cents, currency, active), delete on crm.services to authenticated;
grant insert (organization_id, id, org_client_id, service_id, address_id, start_at, end_at, status, price_cents, notes),
      update (service_id, address_id, start_at, end_at, status, price_cents, notes), delete on crm.jobs to authenticated;
grant insert (organization_id, id, org_client_id, currency, due_date, notes),
      update (status, due_date, notes), delete on crm.invoices to authenticated;
grant insert (organization_id, invoice_id, id, description, quantity, unit_price_cents, job_id, service_id),
      update (description, quantity, unit_price_cents, job_id, service_id), delete on crm.invoice_lines to authenticated;
grant insert (organization_id, id, invoice_id, currency, amount_cents, status, method, provider_payment_id, captured_at),
      update (status, refunded_at, captured_at) on crm.payments to authenticated;
grant insert (organization_id, channel, name, segment, template, scheduled_at),
      update (name, segment, template, scheduled_at, status), delete on crm.campaigns to authenticated;

{% if target == 'postgres' %}
-- The shim's auth.users gains Supabase's confirmation stamp: a person is
-- linked to a user only once the user's email is verified.
alter table auth.users add column if not exists email_confirmed_at timestamptz;
{% endif %}

-- Privacy: a CRM person is a data subject who may never sign up. The
-- inventory gains subject_match 'person_id' (the column holds a crm person
-- id); export_user_data and erase_user reach the people linked to the user,
-- export_person_data and erase_person a person by id. Erasures of people
-- are recorded like those of users.
-- The release's own inventory rows are schema, not a platform action (as
-- in 0009, whose rows predate the audit trigger): not audited.
alter table privacy.data_inventory disable trigger user;
alter table privacy.data_inventory drop constraint data_inventory_subject_match_known;
alter table privacy.data_inventory add constraint data_inventory_subject_match_known
  check (subject_match in ('user_id', 'email', 'person_id', 'org_client_id'));
insert into privacy.data_inventory (schema_name, table_name, column_name, category, purpose, legal_basis, retention, subject_column, subject_match, erase_with)
select 'crm', t, c, category, purpose, basis, retention, subject, 'person_id', erase_with
  from (values
    ('people', 'first_name', 'name', 'client record shared by the businesses serving the person', 'contract', 'while a client of any organization', 'id', 'null'),
    ('people', 'last_name', 'name', 'client record shared by the businesses serving the person', 'contract', 'while a client of any organization', 'id', 'null'),
    ('people', 'primary_email', 'contact', 'reaching the client', 'contract', 'while a client of any organization', 'id', 'null'),
    ('people', 'primary_phone_e164', 'contact', 'reaching the client', 'contract', 'while a client of any organization', 'id', 'null'),
    ('people', 'avatar_url', 'profile', 'client record', 'contract', 'while a client of any organization', 'id', 'null'),
    ('person_emails', 'email', 'contact', 'reaching the client', 'contract', 'while a client of any organization', 'person_id', 'delete'),
    ('person_phones', 'phone_e164', 'contact', 'reaching the client', 'contract', 'while a client of any organization', 'person_id', 'delete'),
    ('addresses', 'label', 'address', 'where the work is done', 'contract', 'while a client of any organization', 'person_id', 'null'),
    ('addresses', 'address1', 'address', 'where the work is done', 'contract', 'while a client of any organization', 'person_id', 'erased_text'),
    ('addresses', 'address2', 'address', 'where the work is done', 'contract', 'while a client of any organization', 'person_id', 'null'),
    ('addresses', 'city', 'address', 'where the work is done', 'contract', 'while a client of any organization', 'person_id', 'null'),
    ('addresses', 'state', 'address', 'where the work is done', 'contract', 'while a client of any organization', 'person_id', 'null'),
    ('addresses', 'postal', 'address', 'where the work is done', 'contract', 'while a client of any organization', 'person_id', 'null'),
    ('addresses', 'country', 'address', 'where the work is done (country only: kept for the tax records)', 'legal_obligation', '10 years', 'person_id', null),
    ('addresses', 'lat', 'address', 'routing to the job', 'contract', 'while a client of any organization', 'person_id', 'null'),
    ('addresses', 'lng', 'address', 'routing to the job', 'contract', 'while a client of any organization', 'person_id', 'null'),
    ('org_clients', 'notes', 'correspondence', 'the organization''s notes on its client', 'legitimate_interests', 'while a client of the organization', 'person_id', 'empty_array'),
    ('jobs', 'notes', 'service record', 'instructions for the visit', 'contract', 'while a client of the organization', 'person_id', 'null'),
    ('campaign_sends', 'error', 'delivery record', 'the provider''s answer (may hold the address)', 'legitimate_interests', '1 year', 'person_id', 'null')
  ) as v (t, c, category, purpose, basis, retention, subject, erase_with)
union all
-- Rows of a client (subject_match org_client_id: the client rows of the person).
select 'crm', t, c, category, purpose, basis, retention, 'org_client_id', 'org_client_id', erase_with
  from (values
    ('org_client_settings', 'custom_fields', 'profile', 'the organization''s own fields on its client', 'legitimate_interests', 'while a client of the organization', 'empty_object'),
    ('invoices', 'notes', 'correspondence', 'notes on the client''s invoice', 'contract', 'while a client of the organization', 'null'),
    ('reminders', 'error', 'delivery record', 'the provider''s answer (may hold the number)', 'legitimate_interests', '1 year', 'null')
  ) as v (t, c, category, purpose, basis, retention, erase_with);
alter table privacy.data_inventory enable trigger user;

create table privacy.person_erasures (
  person_id uuid primary key,
  erased_at timestamptz not null default clock_timestamp(),
  erased_by uuid,
  columns_erased integer not null,
  rows_deleted integer not null
);
comment on table privacy.person_erasures is 'One row per erased CRM person (erase_person, or erase_user of a linked user): when, by whom, how much. Append-only.';
{{ m.table_grants('privacy.person_erasures', 'select') }}
