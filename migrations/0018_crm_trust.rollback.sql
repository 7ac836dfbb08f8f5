-- Rollback of 0018 crm trust: back to one shared record per person.
-- tenantdb drops the functions of 0018's own repeatables first; this maps
-- the rows back and restores the tables, constraints and comments of 0017.
-- The CRM's functions and policies are repeatables of 0013 and stay this
-- release's: rolling back is the first step of going back to the release
-- before, whose `tenantdb migrate` re-applies its own (their checksums
-- differ). Until then the CRM functions expect 0018's columns.
-- Mapping back: the clients 0018 gave a key of their own go back to the
-- person they had; each organization's own address is the person's again
-- (one row per address and person; an id two people share gets a new one
-- for the second); a person's shared record takes the record of its
-- oldest client where it has clients (the old model has one record per
-- person: where organizations recorded different names, the oldest
-- client's wins) and the client's email and phone become the person's
-- primary ones unless another person has them (an email or phone belongs
-- to one person again: a verified one, else the oldest, keeps it).
{% import 'sql/macros.sql' as m with context %}

{% for t in ['people', 'person_emails', 'person_phones', 'addresses', 'marketing_consents', 'user_person_links', 'org_clients', 'jobs',
             'campaign_sends'] %}
alter table crm.{{ t }} disable trigger user;
{% endfor %}
{% for t in ['people', 'person_emails', 'person_phones', 'addresses', 'marketing_consents', 'user_person_links'] %}
drop policy if exists person_select on crm.{{ t }};
{% endfor %}

-- The clients 0018 gave a key of their own are tied back to the person
-- they had (where it still exists and their organization has no other
-- client tied to it); the copies of their consent records go, later ones
-- follow them; the keys left unused go.
update crm.org_clients oc set person_id = k.old_person_id
  from private.crm_trust_rekeyed k
 where oc.organization_id = k.organization_id and oc.id = k.org_client_id and oc.person_id = k.new_person_id
   and exists (select from crm.people p where p.id = k.old_person_id)
   and not exists (select from crm.org_clients o2 where o2.organization_id = k.organization_id and o2.person_id = k.old_person_id);
delete from crm.marketing_consents c
 using private.crm_trust_rekeyed k
 where c.person_id = k.new_person_id and c.recorded_by_organization_id = k.organization_id
   and exists (select from crm.marketing_consents o where o.person_id = k.old_person_id and o.recorded_by_organization_id = k.organization_id
                  and (o.channel, o.opted_in, o.source, o.occurred_at) = (c.channel, c.opted_in, c.source, c.occurred_at)
                  and o.recorded_by is not distinct from c.recorded_by)
   and not exists (select from crm.org_clients oc where oc.person_id = k.new_person_id);
update crm.marketing_consents c set person_id = k.old_person_id
  from private.crm_trust_rekeyed k
 where c.person_id = k.new_person_id and not exists (select from crm.org_clients oc where oc.person_id = k.new_person_id);
delete from crm.people p
 using private.crm_trust_rekeyed k
 where p.id = k.new_person_id and not exists (select from crm.org_clients oc where oc.person_id = p.id)
   and not exists (select from crm.user_person_links l where l.person_id = p.id);
drop table private.crm_trust_rekeyed;

-- Addresses ---------------------------------------------------------------------------------
create temporary table crm_trust_addresses as
select ca.organization_id, ca.org_client_id, ca.id, oc.person_id, ca.label, ca.address1, ca.address2, ca.city, ca.state, ca.postal,
       ca.country, ca.lat, ca.lng, ca.created_at,
       case when dense_rank() over (partition by ca.id order by oc.person_id) = 1 then ca.id
            else md5(ca.id::text || oc.person_id::text)::uuid end as new_id
  from crm.client_addresses ca
  join crm.org_clients oc on oc.organization_id = ca.organization_id and oc.id = ca.org_client_id;
insert into crm.addresses (id, person_id, label, address1, address2, city, state, postal, country, lat, lng, created_at)
select distinct on (a.new_id) a.new_id, a.person_id, a.label, a.address1, a.address2, a.city, a.state, a.postal, a.country, a.lat, a.lng, a.created_at
  from crm_trust_addresses a
 order by a.new_id, a.created_at
on conflict (id) do nothing;

alter table crm.jobs drop constraint jobs_address_of_client;
drop index crm.jobs_address;
alter table crm.org_clients drop constraint org_clients_default_address_of_client;
drop index crm.org_clients_default_address;
update crm.jobs j set address_id = a.new_id
  from crm_trust_addresses a
 where a.organization_id = j.organization_id and a.org_client_id = j.org_client_id and a.id = j.address_id and a.new_id <> a.id;
update crm.org_clients oc set default_address_id = a.new_id
  from crm_trust_addresses a
 where a.organization_id = oc.organization_id and a.org_client_id = oc.id and a.id = oc.default_address_id and a.new_id <> a.id;
drop table crm.client_addresses, crm_trust_addresses;
alter table crm.jobs add constraint jobs_address_of_client foreign key (person_id, address_id) references crm.addresses (person_id, id);
create index jobs_address on crm.jobs (person_id, address_id);
alter table crm.org_clients add constraint org_clients_default_address_of_person foreign key (person_id, default_address_id)
  references crm.addresses (person_id, id);
create index org_clients_default_address on crm.org_clients (person_id, default_address_id);
alter table crm.jobs drop constraint jobs_client_fk;
alter table crm.jobs add constraint jobs_client_fk foreign key (organization_id, org_client_id, person_id)
  references crm.org_clients (organization_id, id, person_id);
alter table crm.campaign_sends drop constraint campaign_sends_client_fk;
alter table crm.campaign_sends add constraint campaign_sends_client_fk foreign key (organization_id, org_client_id, person_id)
  references crm.org_clients (organization_id, id, person_id) on delete cascade;

-- The shared record: the oldest client's ------------------------------------------------------
create temporary table crm_trust_records as
select distinct on (oc.person_id) oc.person_id, oc.first_name, oc.last_name, oc.email, oc.phone_e164, oc.created_at
  from crm.org_clients oc
 order by oc.person_id, oc.created_at, oc.organization_id;
update crm.people p set first_name = r.first_name, last_name = r.last_name
  from crm_trust_records r where r.person_id = p.id;
{% for t, c, r in [('person_emails', 'email', 'email'), ('person_phones', 'phone_e164', 'phone_e164')] %}
-- One {{ c }} belongs to one person again: a verified one wins over an
-- unverified copy on another person.
delete from crm.{{ t }} x
 where x.verified_at is null
   and exists (select from crm.{{ t }} y where y.{{ c }} = x.{{ c }} and y.person_id <> x.person_id
                                           and (y.verified_at is not null or (y.created_at, y.id) < (x.created_at, x.id)));
insert into crm.{{ t }} (person_id, {{ c }}, is_primary)
select distinct on (r.{{ r }}) r.person_id, r.{{ r }}, false from crm_trust_records r
 where r.{{ r }} is not null and not exists (select from crm.{{ t }} y where y.{{ c }} = r.{{ r }})
 order by r.{{ r }}, r.created_at;
update crm.{{ t }} x set is_primary = (x.{{ c }} = r.{{ r }})
  from crm_trust_records r
 where r.person_id = x.person_id and exists (select from crm.{{ t }} y where y.person_id = r.person_id and y.{{ c }} = r.{{ r }});
drop index crm.{{ t }}_verified_once;
alter table crm.{{ t }} drop constraint {{ t }}_once_per_person;
alter table crm.{{ t }} add constraint {{ t }}_{{ c.split('_')[0] }}_unique unique ({{ c }});
alter table crm.{{ t }} drop column verified_at;
{% endfor %}
drop table crm_trust_records;
update crm.people p
   set primary_email = (select e.email from crm.person_emails e where e.person_id = p.id and e.is_primary),
       primary_phone_e164 = (select f.phone_e164 from crm.person_phones f where f.person_id = p.id and f.is_primary);
update crm.org_clients oc
   set search_name = coalesce(private.crm_search_name(p.first_name, p.last_name), ''),
       search_contact = coalesce(private.crm_search_contact(p.primary_email, p.primary_phone_e164), '')
  from crm.people p where p.id = oc.person_id;

drop index crm.org_clients_email;
drop index crm.org_clients_phone;
drop index crm.org_clients_email_domain;
alter table crm.org_clients drop column first_name, drop column last_name, drop column email, drop column phone_e164;
drop index crm.people_created_by;
alter table crm.people drop column verified_at, drop column created_by;

{% for t in ['people', 'person_emails', 'person_phones', 'addresses', 'marketing_consents', 'user_person_links', 'org_clients', 'jobs',
             'campaign_sends'] %}
alter table crm.{{ t }} enable trigger user;
{% endfor %}

update crm.user_person_links set linked_via = 'email_confirmed' where linked_via = 'phone_confirmed';
alter table crm.user_person_links drop constraint user_person_links_via_known;
alter table crm.user_person_links add constraint user_person_links_via_known check (linked_via in ('signup', 'email_confirmed'));
alter table catalog.limits disable trigger user;
delete from catalog.limits where key = 'crm.people.per_user_per_day';
alter table catalog.limits enable trigger user;
alter table privacy.data_inventory disable trigger user;
delete from privacy.data_inventory
 where schema_name = 'crm' and (table_name = 'client_addresses' or (table_name = 'org_clients' and column_name in ('first_name', 'last_name', 'email', 'phone_e164')));
alter table privacy.data_inventory enable trigger user;

-- The comments 0018 changed, as 0017 left them.
comment on table crm.people is 'A person known to one or more organizations (a client, a lead). Shared: one row per human, deduplicated by email and phone; written only by functions (upsert_person, propagate_contact_update). An organization sees a person while the person is its client.';
comment on table crm.person_emails is 'Every email of a person, lower-cased; an email belongs to one person; at most one primary.';
comment on table crm.person_phones is 'Every phone of a person in E.164 (+ country code, up to 15 digits); a number belongs to one person; at most one primary.';
comment on table crm.addresses is 'A person''s addresses (home, rental, office); jobs take place at one of the client''s addresses.';
comment on table crm.user_person_links is 'A signed-up user linked to the person with the same verified email: the user sees that person''s record and may correct it.';
comment on table crm.marketing_consents is 'Email and SMS opt-ins and opt-outs of a person, with history: one append-only row per decision. For an organization, the person''s own opt-out wins; otherwise the latest decision of the person or that organization counts (source default: the not-opted-in rows upsert_person writes). Campaigns send only to people opted in for them.';
comment on column crm.org_clients.person_id is null;
comment on column crm.org_clients.search_name is 'The person''s first and last name, lower-cased, for search_clients. Kept by trigger from crm.people.';
comment on column crm.org_clients.search_contact is 'The person''s primary email and phone digits, lower-cased, for search_clients. Kept by trigger from crm.people.';

-- The trigger that reads phone_confirmed_at goes with the column.
drop trigger if exists link_user_to_person_trigger on auth.users;
{% if target == 'postgres' %}
alter table auth.users drop column if exists phone_confirmed_at;
{% endif %}
