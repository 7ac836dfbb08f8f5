-- 0018 crm trust: what an organization records about its client is its own.
--   * org_clients gains the organization's own record of the client: names,
--     email and phone (first_name, last_name, email, phone_e164); search,
--     reminders and campaigns read these, never the shared person.
--   * crm.client_addresses: the addresses an organization records for its
--     client (jobs take place at one of them). crm.addresses keeps only the
--     person's own addresses (what a linked user adds).
--   * A person's emails and phones are verified identifiers (verified_at):
--     a user who confirmed that email or phone. Only a verified identifier
--     ties clients of different organizations to one person; an identifier
--     is verified for one person at most (person_emails_verified_once).
--     crm.people is the key and the person's own record (verified_at: when
--     they proved an identifier; created_by: the user who created an
--     unverified key with upsert_person).
--   * jobs and campaign sends follow their client's person (on update
--     cascade): a client moves to the verified person when its own email or
--     phone is verified, and away from it when the organization changes it.
--   * catalog.limits 'crm.people.per_user_per_day' bounds upsert_person.
-- Data: every client gets its organization's copy of the shared record it
-- saw; every address is copied to each client of its person under the same
-- id (ids are per organization), and the original is removed from the
-- person's own addresses; an email is verified where the user linked to the
-- person confirmed it; a client whose record carries no verified
-- identifier of its (verified) person gets a person of its own. The
-- rollback maps it all back.
{% import 'sql/macros.sql' as m with context %}

{% if target == 'postgres' %}
-- The shim's auth.users gains Supabase's phone confirmation stamp.
alter table auth.users add column if not exists phone_confirmed_at timestamptz;
{% endif %}

-- The CRM's triggers stay off while rows are mapped (this change writes
-- what they would derive).
{% for t in ['people', 'person_emails', 'person_phones', 'org_clients', 'jobs', 'campaign_sends'] %}
alter table crm.{{ t }} disable trigger user;
{% endfor %}
drop trigger if exists search_sync on crm.people;
drop function if exists private.crm_people_search_sync();

-- People: the key, verified or not ---------------------------------------------------
alter table crm.people add column verified_at timestamptz, add column created_by uuid;
create index people_created_by on crm.people (created_by, created_at) where created_by is not null;
comment on column crm.people.verified_at is 'When the person proved an identifier (a user confirmed this email or phone); null: a key an organization''s client was given, shared with nobody.';
comment on column crm.people.created_by is 'The user whose upsert_person created this key (bounded by catalog.limits crm.people.per_user_per_day); not a foreign key.';
{% for t, c in [('person_emails', 'email'), ('person_phones', 'phone_e164')] %}
alter table crm.{{ t }} add column verified_at timestamptz;
alter table crm.{{ t }} drop constraint {{ t }}_{{ c.split('_')[0] }}_unique;
alter table crm.{{ t }} add constraint {{ t }}_once_per_person unique (person_id, {{ c }});
create unique index {{ t }}_verified_once on crm.{{ t }} ({{ c }}) where verified_at is not null;
comment on column crm.{{ t }}.verified_at is 'When a user linked to the person confirmed it: only a verified {{ c.split('_')[0] }} ties clients of different organizations to this person. Null: recorded before verification existed, matched by nobody.';
{% endfor %}

alter table crm.user_person_links drop constraint user_person_links_via_known;
alter table crm.user_person_links add constraint user_person_links_via_known check (linked_via in ('signup', 'email_confirmed', 'phone_confirmed'));

-- Verified: the email a linked user confirmed.
update crm.person_emails e
   set verified_at = l.linked_at
  from crm.user_person_links l
  join auth.users a on a.id = l.user_id
 where l.person_id = e.person_id and a.email_confirmed_at is not null and lower(btrim(a.email)) = e.email;
-- A person linked to a user is that user's own person (verified), even
-- where the user's email has changed since: never an unverified key that
-- someone else's verification could take over.
update crm.people p
   set verified_at = (select min(l.linked_at) from crm.user_person_links l where l.person_id = p.id)
 where exists (select from crm.user_person_links l where l.person_id = p.id);

-- Clients: the organization's own record -------------------------------------------------
alter table crm.org_clients
  add column first_name text,
  add column last_name text,
  add column email text,
  add column phone_e164 text,
  add constraint org_clients_first_name_length check (length(first_name) <= 200),
  add constraint org_clients_last_name_length check (length(last_name) <= 200),
  add constraint org_clients_email_length check (length(email) <= 254),
  add constraint org_clients_email_normalized check (email = lower(btrim(email)) and email ~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$'),
  add constraint org_clients_phone_e164 check (phone_e164 ~ '^\+[1-9][0-9]{7,14}$'),
  add constraint org_clients_phone_e164_length check (length(phone_e164) <= 16);
comment on column crm.org_clients.first_name is '@personal The organization''s record of the client''s first name: its own, seen and changed by it alone.';
comment on column crm.org_clients.last_name is '@personal The organization''s record of the client''s last name.';
comment on column crm.org_clients.email is '@personal The email the organization reaches the client at (lower-cased). When a user verified it, the client is that user''s person.';
comment on column crm.org_clients.phone_e164 is '@personal The phone (E.164) the organization reaches the client at; reminders and SMS go here. When a user verified it, the client is that user''s person.';
comment on column crm.org_clients.person_id is 'The person this client is: the verified person whose email or phone this record carries, else a key of its own (upsert_person''s). Kept by the database.';
comment on column crm.org_clients.search_name is 'The client''s first and last name as this organization recorded them, lower-cased, for search_clients (kept by trigger).';
comment on column crm.org_clients.search_contact is 'The client''s email and phone digits as this organization recorded them, lower-cased, for search_clients (kept by trigger).';
-- Exact lookups (search_clients, and a verified identifier finding its
-- clients in every organization) and an email domain in one organization.
create index org_clients_email on crm.org_clients (email);
create index org_clients_phone on crm.org_clients (phone_e164);
create index org_clients_email_domain on crm.org_clients (organization_id, (split_part(email, '@', 2)), email);

-- (The search columns were computed from the same person's names and
-- primary contacts, kept so by the previous release's trigger: they match
-- the copied record already, and every row is rewritten once, not twice.)
update crm.org_clients oc
   set first_name = p.first_name, last_name = p.last_name, email = p.primary_email, phone_e164 = p.primary_phone_e164
  from crm.people p
 where p.id = oc.person_id;

-- Addresses: the organization's own ------------------------------------------------------
create table crm.client_addresses (
  organization_id uuid not null,
  org_client_id uuid not null,
  id uuid not null default gen_random_uuid(),
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
  updated_at timestamptz not null default now(),
  primary key (organization_id, id),
  constraint client_addresses_client_id unique (organization_id, org_client_id, id),
  constraint client_addresses_client_fk foreign key (organization_id, org_client_id)
    references crm.org_clients (organization_id, id) on delete cascade,
  constraint client_addresses_lat_range check (lat between -90 and 90),
  constraint client_addresses_lng_range check (lng between -180 and 180),
  constraint client_addresses_lat_lng_pair check ((lat is null) = (lng is null)),
  constraint client_addresses_country_iso3166 check (country ~ '^[A-Z]{2}$'),
  constraint client_addresses_label_length check (length(label) <= 200),
  constraint client_addresses_address1_length check (length(address1) between 1 and 200),
  constraint client_addresses_address2_length check (length(address2) <= 200),
  constraint client_addresses_city_length check (length(city) <= 200),
  constraint client_addresses_state_length check (length(state) <= 200),
  constraint client_addresses_postal_length check (length(postal) <= 200)
);
comment on table crm.client_addresses is 'The addresses an organization records for its client (home, rental, office): its own, seen and changed by it alone; a job takes place at one of its client''s.';
comment on column crm.client_addresses.country is '@personal ISO 3166-1 alpha-2.';
{% for c in ['label', 'address1', 'address2', 'city', 'state', 'postal', 'lat', 'lng'] %}
comment on column crm.client_addresses.{{ c }} is '@personal';
{% endfor %}
{{ m.table_grants('crm.client_addresses') }}
comment on table crm.addresses is 'A person''s own addresses, added by the user linked to the person (add_person_address); no organization reads them.';

insert into crm.client_addresses (organization_id, org_client_id, id, label, address1, address2, city, state, postal, country, lat, lng, created_at)
select oc.organization_id, oc.id, a.id, a.label, a.address1, a.address2, a.city, a.state, a.postal, a.country, a.lat, a.lng, a.created_at
  from crm.addresses a
  join crm.org_clients oc on oc.person_id = a.person_id;

alter table crm.jobs drop constraint jobs_address_of_client;
drop index crm.jobs_address;
alter table crm.org_clients drop constraint org_clients_default_address_of_person;
drop index crm.org_clients_default_address;
delete from crm.addresses a where exists (select from crm.org_clients oc where oc.person_id = a.person_id);

-- A client keeps its person where the person is verified and the
-- client's record carries one of its verified identifiers, or where the
-- person is an unverified key and the client is its oldest; every other
-- client gets a key of its own (a key shared across organizations was a
-- channel between them). Which, and the person each had, is kept for the
-- rollback (private.crm_trust_rekeyed).
create table private.crm_trust_rekeyed (
  organization_id uuid not null,
  org_client_id uuid not null,
  old_person_id uuid not null,
  new_person_id uuid not null,
  primary key (organization_id, org_client_id)
);
comment on table private.crm_trust_rekeyed is 'The clients 0018_crm_trust gave a key of their own, with the person they had: its rollback ties them back.';
revoke all on private.crm_trust_rekeyed from public, anon, authenticated, service_role;
insert into private.crm_trust_rekeyed (organization_id, org_client_id, old_person_id, new_person_id)
select oc.organization_id, oc.id, oc.person_id, gen_random_uuid()
  from crm.org_clients oc
  join crm.people p on p.id = oc.person_id
 where case when p.verified_at is not null
            then not exists (select from crm.person_emails e where e.person_id = oc.person_id and e.verified_at is not null and e.email = oc.email)
             and not exists (select from crm.person_phones f where f.person_id = oc.person_id and f.verified_at is not null and f.phone_e164 = oc.phone_e164)
            else exists (select from crm.org_clients o2 where o2.person_id = oc.person_id
                                                          and (o2.created_at, o2.organization_id, o2.id) < (oc.created_at, oc.organization_id, oc.id)) end;
insert into crm.people (id, created_at)
select k.new_person_id, oc.created_at
  from private.crm_trust_rekeyed k join crm.org_clients oc on oc.organization_id = k.organization_id and oc.id = k.org_client_id;
-- The organization's consent records go with its client.
insert into crm.marketing_consents (person_id, channel, opted_in, source, recorded_by_organization_id, recorded_by, occurred_at)
select k.new_person_id, c.channel, c.opted_in, c.source, c.recorded_by_organization_id, c.recorded_by, c.occurred_at
  from private.crm_trust_rekeyed k
  join crm.marketing_consents c on c.person_id = k.old_person_id and c.recorded_by_organization_id = k.organization_id;

-- Jobs and sends follow their client's person.
alter table crm.jobs drop constraint jobs_client_fk;
alter table crm.jobs add constraint jobs_client_fk foreign key (organization_id, org_client_id, person_id)
  references crm.org_clients (organization_id, id, person_id) on update cascade;
alter table crm.campaign_sends drop constraint campaign_sends_client_fk;
alter table crm.campaign_sends add constraint campaign_sends_client_fk foreign key (organization_id, org_client_id, person_id)
  references crm.org_clients (organization_id, id, person_id) on update cascade on delete cascade;
update crm.org_clients oc set person_id = k.new_person_id
  from private.crm_trust_rekeyed k where oc.organization_id = k.organization_id and oc.id = k.org_client_id;

-- A verified person's own record: their profile's names and verified
-- email, not what an organization typed (that stays with the organization).
update crm.people p
   set first_name = u.first_name, last_name = u.last_name, avatar_url = null,
       primary_email = (select e.email from crm.person_emails e where e.person_id = p.id and e.verified_at is not null order by e.verified_at limit 1),
       primary_phone_e164 = null
  from crm.user_person_links l
  join identity.users u on u.id = l.user_id
 where l.person_id = p.id and p.verified_at is not null;

alter table crm.jobs add constraint jobs_address_of_client foreign key (organization_id, org_client_id, address_id)
  references crm.client_addresses (organization_id, org_client_id, id);
create index jobs_address on crm.jobs (organization_id, org_client_id, address_id);
alter table crm.org_clients add constraint org_clients_default_address_of_client foreign key (organization_id, id, default_address_id)
  references crm.client_addresses (organization_id, org_client_id, id);
create index org_clients_default_address on crm.org_clients (organization_id, id, default_address_id);

{% for t in ['people', 'person_emails', 'person_phones', 'org_clients', 'jobs', 'campaign_sends'] %}
alter table crm.{{ t }} enable trigger user;
{% endfor %}

grant insert (first_name, last_name, email, phone_e164), update (first_name, last_name, email, phone_e164) on crm.org_clients to authenticated;

comment on table crm.people is 'A person: the key that ties an organization''s client to the user who proved one of its email or phone (verified_at), and that person''s own record (names, contact) as they keep it. Never a channel between organizations: no organization reads it; an organization''s client carries its own record.';
comment on table crm.person_emails is 'A person''s verified emails (verified_at: a linked user confirmed it); an email is verified for one person at most. Rows without verified_at predate verification and match nothing.';
comment on table crm.person_phones is 'A person''s verified phones in E.164 (verified_at: a linked user confirmed it); a number is verified for one person at most. Rows without verified_at predate verification and match nothing.';
comment on table crm.user_person_links is 'A signed-up user linked to the person whose email or phone they confirmed: they see their own record and, through my_service_history, what their providers share with them.';
comment on table crm.marketing_consents is 'Email and SMS opt-ins and opt-outs of a person, append-only: the person''s own (source person: the linked user, or the back end for them), or an organization''s record for its client (source organization, seen by that organization only). An organization may message the person when its own latest record or the person''s says opted in, and the person has not opted out themself. Rows of source default predate this rule and count for nobody.';

-- Limits: people one user creates. The release's own limit is schema, not
-- a platform action (as in 0012): not audited.
alter table catalog.limits disable trigger user;
insert into catalog.limits (key, value, description) values
  ('crm.people.per_user_per_day', 1000, 'CRM people (client keys) one user may create with upsert_person in 24 hours.');
alter table catalog.limits enable trigger user;

-- Privacy: the organization's own record is the client's personal data too.
alter table privacy.data_inventory disable trigger user;
insert into privacy.data_inventory (schema_name, table_name, column_name, category, purpose, legal_basis, retention, subject_column, subject_match, erase_with)
select 'crm', t, c, category, purpose, 'contract', 'while a client of the organization', subject, match, erase_with
  from (values
    ('org_clients', 'first_name', 'name', 'the organization''s record of its client', 'person_id', 'person_id', 'null'),
    ('org_clients', 'last_name', 'name', 'the organization''s record of its client', 'person_id', 'person_id', 'null'),
    ('org_clients', 'email', 'contact', 'reaching the client', 'person_id', 'person_id', 'null'),
    ('org_clients', 'phone_e164', 'contact', 'reaching the client', 'person_id', 'person_id', 'null'),
    ('client_addresses', 'label', 'address', 'where the work is done', 'org_client_id', 'org_client_id', 'null'),
    ('client_addresses', 'address1', 'address', 'where the work is done', 'org_client_id', 'org_client_id', 'erased_text'),
    ('client_addresses', 'address2', 'address', 'where the work is done', 'org_client_id', 'org_client_id', 'null'),
    ('client_addresses', 'city', 'address', 'where the work is done', 'org_client_id', 'org_client_id', 'null'),
    ('client_addresses', 'state', 'address', 'where the work is done', 'org_client_id', 'org_client_id', 'null'),
    ('client_addresses', 'postal', 'address', 'where the work is done', 'org_client_id', 'org_client_id', 'null'),
    ('client_addresses', 'lat', 'address', 'routing to the job', 'org_client_id', 'org_client_id', 'null'),
    ('client_addresses', 'lng', 'address', 'routing to the job', 'org_client_id', 'org_client_id', 'null')
  ) as v (t, c, category, purpose, subject, match, erase_with)
union all
select 'crm', 'client_addresses', 'country', 'address', 'where the work is done (country only: kept for the tax records)', 'legal_obligation', '10 years',
       'org_client_id', 'org_client_id', null;
alter table privacy.data_inventory enable trigger user;
