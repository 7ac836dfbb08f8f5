-- crm (seed 004): the rules of the CRM tables (triggers) and its API.
-- Functions take p_-prefixed parameters, as seed 004's rpc calls name them
-- (p_org_client_id, p_org_id, p_query); its edge functions' request fields
-- are the same names with the prefix (email -> p_email).
{% import 'sql/macros.sql' as m with context %}

-- Who may call what -------------------------------------------------------------------

-- Tenant checks use private.require_member_or_platform (functions/0006):
-- a trusted caller, a member with the permission, or platform staff with
-- platform.tenant.read for reads (none for writes).

-- private.crm_speaks_for(what text, person_id uuid) -> boolean
-- Whether the caller speaks for the person: the user linked to them (who
-- proved one of their email or phone) or the back end (a trusted caller).
-- Only they change the person's own record; an organization changes its
-- own record of its client (crm.org_clients, crm.client_addresses).
-- Refuses (P0002) an unknown person.
create or replace function private.crm_speaks_for(what text, person_id uuid)
  returns boolean
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
begin
  if not exists (select from crm.people p where p.id = crm_speaks_for.person_id) then
    raise exception '%: no person %', what, person_id using errcode = 'P0002';
  end if;
  return private.is_trusted_caller()
      or exists (select from crm.user_person_links l where l.person_id = crm_speaks_for.person_id and l.user_id = auth.uid());
end
$fn$;
comment on function private.crm_speaks_for is 'Whether the caller is the user linked to a person or the back end (P0002 for an unknown person).';
{{ m.private_grants('crm_speaks_for', 'service_role') }}

-- private.crm_require_person(what text, person_id uuid) -> void
-- Refuses (P0002) an unknown person and (42501) a caller who does not
-- speak for them (crm_speaks_for).
create or replace function private.crm_require_person(what text, person_id uuid)
  returns void
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
begin
  if not private.crm_speaks_for(what, person_id) then
    raise exception '%: only the person (the user linked to them) or the back end changes a person''s own record', what
      using errcode = '42501',
            hint = 'An organization changes its own record of its client: crm.org_clients (names, email, phone) and crm.client_addresses.';
  end if;
end
$fn$;
comment on function private.crm_require_person is 'Raises P0002 for an unknown person and 42501 unless the caller is the linked user or the back end.';
{{ m.private_grants('crm_require_person', 'service_role') }}

-- Normalization -------------------------------------------------------------------------

-- private.crm_normalize_email(email text) -> text
-- Lower-cased and trimmed; null and '' give null. Refuses (22023) what is
-- not shaped like an address.
create or replace function private.crm_normalize_email(email text)
  returns text
  language plpgsql
  immutable
  {{ m.pinned() }}
as $fn$
declare
  e text := lower(btrim(email));
begin
  if coalesce(e, '') = '' then
    return null;
  end if;
  if length(e) > 254 or e !~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$' then
    raise exception 'not an email address: %', left(email, 100) using errcode = '22023';
  end if;
  return e;
end
$fn$;
comment on function private.crm_normalize_email is 'Lower-cased, trimmed email; 22023 for what is not an address.';
{{ m.private_grants('crm_normalize_email', 'service_role') }}

-- private.crm_normalize_phone(phone text) -> text
-- The number in E.164: spaces, dots, dashes and parentheses are dropped; a
-- leading 00 becomes +; ten digits without a country code are taken as
-- North American (+1, the seed's +1XXXXXXXXXX), as are eleven starting
-- with 1. Null and '' give null. Refuses (22023) anything else: letters,
-- too few or too many digits (E.164: at most 15), a country code of 0.
create or replace function private.crm_normalize_phone(phone text)
  returns text
  language plpgsql
  immutable
  {{ m.pinned() }}
as $fn$
declare
  p text := regexp_replace(btrim(phone), '[[:space:].()-]', '', 'g');
begin
  if coalesce(p, '') = '' then
    return null;
  end if;
  if p ~ '^00' then
    p := '+' || substr(p, 3);
  end if;
  if p ~ '^[0-9]{10}$' then
    p := '+1' || p;
  elsif p ~ '^1[0-9]{10}$' then
    p := '+' || p;
  end if;
  if p !~ '^\+[1-9][0-9]{7,14}$' then
    raise exception 'cannot normalize % to E.164 (+ country code and number, 8 to 15 digits)', left(phone, 100)
      using errcode = '22023', hint = 'Give the number with its country code, e.g. +15551234567.';
  end if;
  return p;
end
$fn$;
comment on function private.crm_normalize_phone is 'The phone number in E.164 (North American when ten digits); 22023 when it cannot be normalized.';
{{ m.private_grants('crm_normalize_phone', 'service_role') }}

-- private.crm_search_name(first_name text, last_name text) -> text
-- private.crm_search_contact(email text, phone text) -> text
-- What search_clients matches: the names, and the email with the phone's
-- digits, lower-cased.
create or replace function private.crm_search_name(first_name text, last_name text)
  returns text
  language sql
  immutable
  {{ m.pinned() }}
as $fn$ select left(lower(concat_ws(' ', nullif(btrim(first_name), ''), nullif(btrim(last_name), ''))), 1000) $fn$;
comment on function private.crm_search_name is 'The searchable name of a person, lower-cased.';
{{ m.private_grants('crm_search_name', 'service_role') }}
create or replace function private.crm_search_contact(email text, phone text)
  returns text
  language sql
  immutable
  {{ m.pinned() }}
as $fn$ select left(lower(concat_ws(' ', email, ltrim(phone, '+'))), 1000) $fn$;
comment on function private.crm_search_contact is 'The searchable contact of a person: email and phone digits, lower-cased.';
{{ m.private_grants('crm_search_contact', 'service_role') }}

-- Shared contact data -------------------------------------------------------------------

-- private.crm_primary_contact() -> trigger
-- AFTER INSERT, UPDATE or DELETE on person_emails and person_phones: the
-- person's primary_email / primary_phone_e164 is the primary row's value.
create or replace function private.crm_primary_contact()
  returns trigger
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  pid uuid := coalesce(new.person_id, old.person_id);
  primary_value text;
begin
  if tg_table_name = 'person_emails' then
    select e.email into primary_value from crm.person_emails e where e.person_id = pid and e.is_primary;
    update crm.people p set primary_email = primary_value where p.id = pid and p.primary_email is distinct from primary_value;
  else
    select f.phone_e164 into primary_value from crm.person_phones f where f.person_id = pid and f.is_primary;
    update crm.people p set primary_phone_e164 = primary_value where p.id = pid and p.primary_phone_e164 is distinct from primary_value;
  end if;
  return null;
end
$fn$;
comment on function private.crm_primary_contact is 'Trigger: keeps people.primary_email / primary_phone_e164 equal to the primary contact row.';
revoke all on function private.crm_primary_contact from public, anon, authenticated;
{% for t in ['person_emails', 'person_phones'] %}
drop trigger if exists primary_contact on crm.{{ t }};
create trigger primary_contact
  after insert or update or delete on crm.{{ t }}
  for each row execute function private.crm_primary_contact();
{% endfor %}

{{ m.updated_at('crm.people') }}
{{ m.append_only('crm.marketing_consents') }}
{{ m.append_only('privacy.person_erasures') }}

-- private.crm_own_client(organizations uuid[], email text, phone text) -> crm.org_clients
-- The oldest client of these organizations whose own record has this
-- email, else this phone (null fields when none): how an organization
-- finds its own client again, never looking at anyone else's records.
-- Refuses nothing.
create or replace function private.crm_own_client(organizations uuid[], email text, phone text)
  returns crm.org_clients
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
declare
  c crm.org_clients;
begin
  select * into c from crm.org_clients oc
   where oc.email = crm_own_client.email and oc.organization_id = any (organizations) order by oc.created_at limit 1;
  if c.id is null then
    select * into c from crm.org_clients oc
     where oc.phone_e164 = crm_own_client.phone and oc.organization_id = any (organizations) order by oc.created_at limit 1;
  end if;
  return c;
end
$fn$;
comment on function private.crm_own_client is 'An organization''s own client with this email, else this phone (its own records only).';
{{ m.private_grants('crm_own_client', 'service_role') }}

-- private.upsert_person(p_email text, p_phone text, p_first_name text, p_last_name text)
--   -> table (person_id uuid, is_new boolean)
-- The key of a client-to-be: the person of the caller's own client (in an
-- organization where they hold crm.write) whose record has this email,
-- else this phone, else a key the caller got earlier for it and has not
-- made a client yet (is_new false); else a new key that holds what was
-- typed until it is made a client (is_new true): inserting the client
-- with it copies the names, email and phone into the organization's
-- record. Nobody else's records are searched: the answer is the same
-- whether or not another organization or a user has the email or phone,
-- and a client is tied to another organization's only through an email
-- or phone the person verified (org_clients_guard). Refuses: neither
-- email nor phone (22023); an email or phone that cannot be normalized
-- (22023); a caller that is neither trusted nor holds crm.write in some
-- organization (42501); more new keys than catalog.limits
-- crm.people.per_user_per_day in 24 hours (54000).
create or replace function private.upsert_person(p_email text, p_phone text, p_first_name text, p_last_name text)
  returns table (person_id uuid, is_new boolean)
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  v_email text := private.crm_normalize_email(p_email);
  v_phone text := private.crm_normalize_phone(p_phone);
  orgs uuid[] := private.org_ids_with_permission('crm.write');
  found uuid;
begin
  if not (private.is_trusted_caller() or cardinality(orgs) > 0) then
    raise exception 'upsert_person: crm.write in an organization is required' using errcode = '42501';
  end if;
  if v_email is null and v_phone is null then
    raise exception 'upsert_person: an email or a phone is required' using errcode = '22023';
  end if;
  -- One call of a user at a time: concurrent calls with one new email make one key.
  if auth.uid() is not null then
    perform pg_advisory_xact_lock(hashtextextended('crm.people ' || auth.uid()::text, 0));
  end if;
  found := (private.crm_own_client(orgs, v_email, v_phone)).person_id;
  if found is null and auth.uid() is not null then
    -- A key this caller got earlier and has not made a client yet.
    select p.id into found from crm.people p
     where p.created_by = auth.uid() and p.verified_at is null
       and (p.primary_email = v_email or (p.primary_phone_e164 = v_phone and (v_email is null or p.primary_email is null)))
     order by p.created_at limit 1;
  end if;
  if found is not null then
    return query select found, false;
    return;
  end if;
  if not private.is_trusted_caller() then
    perform private.require_under_limit('crm.people.per_user_per_day', auth.uid(),
      (select count(*) from crm.people p where p.created_by = auth.uid() and p.created_at > now() - interval '1 day'));
  end if;
  insert into crm.people (first_name, last_name, primary_email, primary_phone_e164, created_by)
  values (left(nullif(btrim(p_first_name), ''), 200), left(nullif(btrim(p_last_name), ''), 200), v_email, v_phone, auth.uid())
  returning id into found;
  return query select found, true;
end
$fn$;
comment on function private.upsert_person is 'Definer twin of upsert_person.';
{{ m.private_grants('upsert_person') }}
{{ m.api_function('upsert_person', 'p_email text default null, p_phone text default null, p_first_name text default null, p_last_name text default null',
   'table (person_id uuid, is_new boolean)', 'p_email, p_phone, p_first_name, p_last_name',
   'The person of your own organization\'s client with this email (lower-cased) or phone (E.164), else a new key carrying what you typed (insert the client with it); returns (person_id, is_new). Never looks at other organizations\' records. No email and no phone, or one that cannot be normalized: 22023. Needs crm.write in some organization (42501); 54000 past catalog.limits crm.people.per_user_per_day.') }}

-- private.propagate_contact_update(p_person_id uuid, p_first_name text, p_last_name text, p_email text, p_phone text)
--   -> table (success boolean, person_id uuid)
-- Corrects a person's names, email or phone where the caller may:
--   * the user linked to the person, or the back end: the person's own
--     record (crm.people); what organizations recorded stays theirs (they
--     see the change through client_account and may take it over);
--   * a member with crm.write in organizations with the person as client:
--     those organizations' own records of the client (crm.org_clients),
--     never anyone else's. A changed email or phone may tie the client to
--     the person who verified it, or untie it (org_clients_guard).
-- Given values replace the old ones; null keeps them. Refuses: an unknown
-- person (P0002); a caller who is none of these (42501); an email or phone
-- that cannot be normalized (22023).
create or replace function private.propagate_contact_update(p_person_id uuid, p_first_name text, p_last_name text, p_email text, p_phone text)
  returns table (success boolean, person_id uuid)
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  v_email text := private.crm_normalize_email(p_email);
  v_phone text := private.crm_normalize_phone(p_phone);
  v_first text := left(nullif(btrim(p_first_name), ''), 200);
  v_last text := left(nullif(btrim(p_last_name), ''), 200);
begin
  if private.crm_speaks_for('propagate_contact_update', p_person_id) then
    update crm.people p
       set first_name = coalesce(v_first, p.first_name), last_name = coalesce(v_last, p.last_name),
           primary_email = coalesce(v_email, p.primary_email), primary_phone_e164 = coalesce(v_phone, p.primary_phone_e164)
     where p.id = p_person_id;
  else
    update crm.org_clients oc
       set first_name = coalesce(v_first, oc.first_name), last_name = coalesce(v_last, oc.last_name),
           email = coalesce(v_email, oc.email), phone_e164 = coalesce(v_phone, oc.phone_e164)
     where oc.person_id = p_person_id and oc.organization_id = any (private.org_ids_with_permission('crm.write'));
    if not found then
      raise exception 'propagate_contact_update: person % is not a client of an organization where you hold crm.write', p_person_id
        using errcode = '42501';
    end if;
  end if;
  return query select true, p_person_id;
end
$fn$;
comment on function private.propagate_contact_update is 'Definer twin of propagate_contact_update.';
{{ m.private_grants('propagate_contact_update') }}
{{ m.api_function('propagate_contact_update', 'p_person_id uuid, p_first_name text default null, p_last_name text default null, p_email text default null, p_phone text default null',
   'table (success boolean, person_id uuid)', 'p_person_id, p_first_name, p_last_name, p_email, p_phone',
   'Corrects names, email or phone: the linked user (or the back end) their own record; a member with crm.write their organizations\' own records of that client, never another organization\'s. Unknown person: P0002; none of these: 42501; bad email or phone: 22023.') }}

-- private.crm_check_address(p_address jsonb) -> jsonb
-- An address as given ({label, address1, address2, city, state, postal,
-- country, lat, lng}), trimmed, country upper-cased (default US), ready
-- for jsonb_populate_record into crm.addresses or crm.client_addresses.
-- Refuses (22023) what is not an object, unknown keys, no address1, a
-- country that is not two letters, and a lat or lng that is not a number
-- the columns hold. (Ranges and lengths: the tables' constraints, 23514.)
create or replace function private.crm_check_address(p_address jsonb)
  returns jsonb
  language plpgsql
  immutable
  {{ m.pinned() }}
as $fn$
begin
  if jsonb_typeof(p_address) is distinct from 'object'
     or p_address - array['label', 'address1', 'address2', 'city', 'state', 'postal', 'country', 'lat', 'lng'] <> '{}'::jsonb
     or coalesce(btrim(p_address ->> 'address1'), '') = '' then
    raise exception 'an address is an object with address1 and optionally label, address2, city, state, postal, country, lat, lng'
      using errcode = '22023';
  end if;
  if length(coalesce(p_address ->> 'country', 'US')) <> 2 then
    raise exception 'address: country is an ISO 3166-1 alpha-2 code (two letters)' using errcode = '22023';
  end if;
  begin
    perform (p_address ->> 'lat')::numeric(9, 6), (p_address ->> 'lng')::numeric(9, 6);
  exception when invalid_text_representation or numeric_value_out_of_range then
    raise exception 'address: lat and lng are numbers of at most three digits before the point' using errcode = '22023';
  end;
  return p_address || jsonb_build_object('address1', btrim(p_address ->> 'address1'),
                                         'country', upper(coalesce(p_address ->> 'country', 'US')));
end
$fn$;
comment on function private.crm_check_address is 'An address object checked and normalized (22023 for a bad one).';
{{ m.private_grants('crm_check_address', 'service_role') }}

-- private.add_person_address(p_person_id uuid, p_address jsonb) -> uuid
-- Adds an address to a person's own record ({label, address1, address2,
-- city, state, postal, country, lat, lng}); returns its id. Only the linked
-- user or the back end: an organization records its client's addresses in
-- crm.client_addresses, its own. Refuses: an unknown person (P0002);
-- anyone else (42501); no address1, unknown keys or a value out of range
-- (22023, 23514).
create or replace function private.add_person_address(p_person_id uuid, p_address jsonb)
  returns uuid
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  a jsonb;
  new_id uuid;
begin
  perform private.crm_require_person('add_person_address', p_person_id);
  a := private.crm_check_address(p_address);
  insert into crm.addresses (person_id, label, address1, address2, city, state, postal, country, lat, lng)
  select p_person_id, r.label, r.address1, r.address2, r.city, r.state, r.postal, r.country, r.lat, r.lng
    from jsonb_populate_record(null::crm.addresses, a) r
  returning id into new_id;
  return new_id;
end
$fn$;
comment on function private.add_person_address is 'Definer twin of add_person_address.';
{{ m.private_grants('add_person_address') }}
{{ m.api_function('add_person_address', 'p_person_id uuid, p_address jsonb', 'uuid', 'p_person_id, p_address',
   'Adds an address ({label, address1, address2, city, state, postal, country, lat, lng}) to a person\'s own record; returns its id. Only the linked user or the back end (42501: an organization inserts into crm.client_addresses); unknown person: P0002; bad address: 22023/23514.') }}

-- private.set_marketing_consent(p_person_id uuid, p_channel text, p_opted_in boolean, p_organization_id uuid) -> uuid
-- Records an email or SMS opt-in or opt-out (history kept); returns the
-- record's id. p_organization_id names the organization recording it
-- (needs crm.write there and the person as its client): the decision
-- counts for that organization only. Without it the decision is the
-- person's own (the linked user, or the back end on their behalf) and
-- counts for every organization; their own opt-out wins. Refuses: unknown person
-- (P0002); not allowed (42501); unknown channel (23514); null p_opted_in (22004).
create or replace function private.set_marketing_consent(p_person_id uuid, p_channel text, p_opted_in boolean, p_organization_id uuid)
  returns uuid
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  new_id uuid;
begin
  if not private.crm_speaks_for('set_marketing_consent', p_person_id) and p_organization_id is null then
    raise exception 'set_marketing_consent: only the person, or an organization serving them (p_organization_id), records consent'
      using errcode = '42501';
  end if;
  if p_organization_id is not null then
    perform private.require_member_or_platform(p_organization_id, 'crm.write', null);
    if not exists (select from crm.org_clients oc where oc.organization_id = p_organization_id and oc.person_id = p_person_id) then
      raise exception 'set_marketing_consent: person % is not a client of organization %', p_person_id, p_organization_id
        using errcode = '42501';
    end if;
  end if;
  if p_opted_in is null then
    raise exception 'set_marketing_consent: p_opted_in must be true or false' using errcode = '22004';
  end if;
  insert into crm.marketing_consents (person_id, channel, opted_in, source, recorded_by_organization_id, recorded_by)
  values (p_person_id, p_channel, p_opted_in, case when p_organization_id is null then 'person' else 'organization' end,
          p_organization_id, auth.uid())
  returning id into new_id;
  return new_id;
end
$fn$;
comment on function private.set_marketing_consent is 'Definer twin of set_marketing_consent.';
{{ m.private_grants('set_marketing_consent') }}
{{ m.api_function('set_marketing_consent', 'p_person_id uuid, p_channel text, p_opted_in boolean, p_organization_id uuid default null', 'uuid',
   'p_person_id, p_channel, p_opted_in, p_organization_id',
   'Records a person\'s email or SMS opt-in or opt-out (history kept). The linked user, or an organization with the person as client and crm.write (42501); unknown person: P0002; unknown channel: 23514.') }}

-- private.crm_opted_in(person_id uuid, channel text, organization_id uuid) -> boolean
-- Whether the organization may send the person messages on the channel:
-- the person's own latest decision, if it is an opt-out, forbids it;
-- otherwise the latest decision recorded by the person or by this
-- organization counts (none: not opted in). Another organization's
-- decisions do not count.
create or replace function private.crm_opted_in(person_id uuid, channel text, organization_id uuid)
  returns boolean
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
begin
  if (select not c.opted_in from crm.marketing_consents c
       where c.person_id = crm_opted_in.person_id and c.channel = crm_opted_in.channel and c.source = 'person'
       order by c.occurred_at desc, c.id desc limit 1) then
    return false;
  end if;
  return coalesce((select c.opted_in from crm.marketing_consents c
                    where c.person_id = crm_opted_in.person_id and c.channel = crm_opted_in.channel
                      and (c.source = 'person' or c.recorded_by_organization_id = crm_opted_in.organization_id)
                    order by c.occurred_at desc, c.id desc limit 1), false);
end
$fn$;
comment on function private.crm_opted_in is 'Whether an organization may message a person on a channel: the person''s own opt-out wins, else the latest decision of the person or that organization (none: false).';
{{ m.private_grants('crm_opted_in', 'service_role') }}

-- Verified identifiers ------------------------------------------------------------------

-- private.crm_verified_person(email text, phone text) -> uuid
-- The person a record with this email and phone names: the person who
-- verified the email; for a record without an email, the person who
-- verified the phone; null when nobody did. (A record's email outweighs
-- its phone: a phone number given up and confirmed by someone else does
-- not take the records that name their first holder by email.) Refuses
-- nothing.
create or replace function private.crm_verified_person(email text, phone text)
  returns uuid
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
begin
  if email is not null then
    return (select e.person_id from crm.person_emails e where e.email = crm_verified_person.email and e.verified_at is not null);
  end if;
  return (select f.person_id from crm.person_phones f where f.phone_e164 = crm_verified_person.phone and f.verified_at is not null);
end
$fn$;
comment on function private.crm_verified_person is 'The person who verified a record''s email (a record without one: its phone), or null.';
{{ m.private_grants('crm_verified_person', 'service_role') }}

-- private.crm_client_person(organization_id uuid, client_id uuid, current uuid, email text, phone text) -> uuid
-- The person an organization's client is, from the organization's own
-- record: the person it names (crm_verified_person) unless the
-- organization already has another client tied to that person; else the
-- current key when nobody verified it; else a new key of its own. So a
-- client is tied to another organization's clients only through an
-- identifier the person proved, and a planted person pulls nobody in.
-- Refuses nothing.
create or replace function private.crm_client_person(organization_id uuid, client_id uuid, current uuid, email text, phone text)
  returns uuid
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  v uuid := private.crm_verified_person(email, phone);
  k uuid;
begin
  if v is not null and (v = current or not exists (select from crm.org_clients oc
                                                     where oc.organization_id = crm_client_person.organization_id and oc.person_id = v
                                                       and oc.id is distinct from client_id)) then
    return v;
  end if;
  if current is not null and exists (select from crm.people p where p.id = current and p.verified_at is null) then
    return current;
  end if;
  insert into crm.people default values returning id into k;
  return k;
end
$fn$;
comment on function private.crm_client_person is 'The person of a client from its own record: the verified owner of its email or phone, else a key of its own.';
{{ m.private_grants('crm_client_person', 'service_role') }}

-- private.crm_auth_phone(phone text) -> text
-- A confirmed phone of auth.users in E.164: Supabase stores it without the
-- '+' (14155552671), so the '+' is put back; nothing is guessed (no
-- North American reading of ten digits). Null when it is not E.164.
create or replace function private.crm_auth_phone(phone text)
  returns text
  language sql
  immutable
  {{ m.pinned() }}
as $fn$
  select p from (select '+' || ltrim(btrim(phone), '+') as p) x where x.p ~ '^\+[1-9][0-9]{7,14}$'
$fn$;
comment on function private.crm_auth_phone is 'An auth user''s phone in E.164 (the + put back), or null.';
{{ m.private_grants('crm_auth_phone', 'service_role') }}

-- private.crm_rederive(person_id uuid) -> void
-- The clients tied to a person follow their own records again
-- (crm_client_person): after the person's verified identifiers changed, a
-- client whose record carries none of them leaves for the person who
-- verified its email or phone, or a key of its own. Refuses nothing.
create or replace function private.crm_rederive(person_id uuid)
  returns void
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  c record;
begin
  for c in select oc.organization_id, oc.id, oc.email, oc.phone_e164 from crm.org_clients oc
            where oc.person_id = crm_rederive.person_id
              and private.crm_verified_person(oc.email, oc.phone_e164) is distinct from crm_rederive.person_id loop
    update crm.org_clients oc
       set person_id = private.crm_client_person(c.organization_id, c.id, crm_rederive.person_id, c.email, c.phone_e164)
     where oc.organization_id = c.organization_id and oc.id = c.id;
  end loop;
end
$fn$;
comment on function private.crm_rederive is 'The clients tied to a person follow their own records again, after its verified identifiers changed.';
{{ m.private_grants('crm_rederive', 'service_role') }}

-- private.crm_reverify(person_id uuid) -> void
-- A person's verified emails and phones are those a user linked to them
-- holds, confirmed, in auth.users now. The others lose verified_at (a
-- login changed its email, a phone number went to someone else, an
-- account was deleted), and the person's clients re-derive
-- (crm_rederive). Refuses nothing.
create or replace function private.crm_reverify(person_id uuid)
  returns void
  language plpgsql
  {{ m.definer() }}
as $fn$
begin
  update crm.person_emails e set verified_at = null
   where e.person_id = crm_reverify.person_id and e.verified_at is not null
     and not exists (select from crm.user_person_links l join auth.users a on a.id = l.user_id
                      where l.person_id = e.person_id and a.email_confirmed_at is not null and lower(btrim(a.email)) = e.email);
  update crm.person_phones f set verified_at = null
   where f.person_id = crm_reverify.person_id and f.verified_at is not null
     and not exists (select from crm.user_person_links l join auth.users a on a.id = l.user_id
                      where l.person_id = f.person_id and (to_jsonb(a) ->> 'phone_confirmed_at') is not null
                        and private.crm_auth_phone(a.phone) = f.phone_e164);
  perform private.crm_rederive(person_id);
end
$fn$;
comment on function private.crm_reverify is 'A person''s verified identifiers are those a linked user holds confirmed now; the others lose verification.';
{{ m.private_grants('crm_reverify', 'service_role') }}

-- private.crm_verify_identifier(user_id uuid, kind text, value text, via text) -> uuid
-- A user confirmed an email or phone (kind 'email' / 'phone'): it becomes a
-- verified identifier of their person — the person who verified it
-- already, if a user linked to them still holds it (crm_reverify; else it
-- is no longer theirs), else the person the user is linked to, else the
-- oldest client key carrying it that nobody verified (the homeowner who
-- was a client first keeps that record's id; the key's unverified
-- identifiers from before the trust model are dropped), else a new person
-- — and the user is linked to that person. Then every organization's
-- client whose own record ties it to the person (crm_verified_person: its
-- email first, then its phone) is tied to it (one per organization), and
-- the person's clients re-derive (crm_rederive). Returns the person.
-- Refuses nothing.
create or replace function private.crm_verify_identifier(user_id uuid, kind text, value text, via text)
  returns uuid
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  tbl text := case kind when 'email' then 'person_emails' else 'person_phones' end;
  col text := case kind when 'email' then 'email' else 'phone_e164' end;
  v uuid;
  promoted boolean;
begin
  perform pg_advisory_xact_lock(hashtextextended('crm.verify ' || kind || ' ' || value, 0));
  execute format('select x.person_id from crm.%I x where x.%I = $1 and x.verified_at is not null', tbl, col) into v using value;
  if v is not null then
    perform private.crm_reverify(v);
    execute format('select x.person_id from crm.%I x where x.%I = $1 and x.verified_at is not null', tbl, col) into v using value;
  end if;
  if v is null then
    select l.person_id into v from crm.user_person_links l join crm.people p on p.id = l.person_id
     where l.user_id = crm_verify_identifier.user_id and p.verified_at is not null order by l.linked_at limit 1;
  end if;
  if v is null then
    execute format('select oc.person_id from crm.org_clients oc join crm.people p on p.id = oc.person_id
                     where oc.%I = $1 and p.verified_at is null order by oc.created_at limit 1', col) into v using value;
  end if;
  if v is null then
    insert into crm.people default values returning id into v;
  end if;
  select p.verified_at is null into promoted from crm.people p where p.id = v;
  if promoted then
    delete from crm.person_emails e where e.person_id = v and e.verified_at is null;
    delete from crm.person_phones f where f.person_id = v and f.verified_at is null;
  end if;
  -- The person's own record starts from their profile.
  update crm.people p
     set verified_at = coalesce(p.verified_at, now()),
         first_name = case when promoted then u.first_name else p.first_name end,
         last_name = case when promoted then u.last_name else p.last_name end,
         primary_email = case when promoted then null else p.primary_email end,
         primary_phone_e164 = case when promoted then null else p.primary_phone_e164 end,
         created_by = null
    from identity.users u
   where p.id = v and u.id = crm_verify_identifier.user_id;
  execute format('insert into crm.%I (person_id, %I, is_primary, verified_at)
                  values ($1, $2, not exists (select from crm.%I x where x.person_id = $1 and x.is_primary), now())
                  on conflict (person_id, %I) do update set verified_at = coalesce(excluded.verified_at, now())', tbl, col, tbl, col)
    using v, value;
  insert into crm.user_person_links (user_id, person_id, linked_via) values (crm_verify_identifier.user_id, v, via)
  on conflict do nothing;
  -- Clients whose own record ties them to the person: its (the oldest one
  -- in an organization that has none tied to it yet).
  execute format('update crm.org_clients oc set person_id = $1
                    from (select distinct on (x.organization_id) x.organization_id, x.id from crm.org_clients x
                           where x.%I = $2 and x.person_id <> $1 and private.crm_verified_person(x.email, x.phone_e164) = $1
                             and not exists (select from crm.org_clients y where y.organization_id = x.organization_id and y.person_id = $1)
                           order by x.organization_id, x.created_at) pick
                   where oc.organization_id = pick.organization_id and oc.id = pick.id', col)
    using v, value;
  perform private.crm_rederive(v);
  return v;
end
$fn$;
comment on function private.crm_verify_identifier is 'A user confirmed an email or phone: it verifies their person, links them, and ties the clients whose records carry it.';
{{ m.private_grants('crm_verify_identifier', 'service_role') }}

-- private.crm_links_changed() -> trigger
-- AFTER DELETE on user_person_links (an account deleted, a link removed):
-- the person's verified identifiers are re-checked (crm_reverify).
create or replace function private.crm_links_changed()
  returns trigger
  language plpgsql
  {{ m.definer() }}
as $fn$
begin
  perform private.crm_reverify(old.person_id) where exists (select from crm.people p where p.id = old.person_id);
  return null;
end
$fn$;
comment on function private.crm_links_changed is 'Trigger: a removed link re-checks the person''s verified identifiers.';
{{ m.row_trigger('crm.user_person_links', 'reverify', 'after delete', 'private.crm_links_changed') }}

-- private.link_user_to_person() -> trigger
-- Homeowner onboarding: AFTER INSERT on identity.users (the profile) and
-- AFTER UPDATE of the email or phone or their confirmation on auth.users
-- (that trigger: functions/0018_crm_trust.sql): the user's confirmed email
-- and confirmed phone are verified identifiers of their person
-- (crm_verify_identifier), and what they no longer hold is not
-- (crm_reverify). What is not confirmed links nothing.
create or replace function private.link_user_to_person()
  returns trigger
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  a record;
  signup boolean := tg_table_schema = 'identity';
begin
  select case when x.email_confirmed_at is not null then lower(btrim(x.email)) end as email,
         case when (to_jsonb(x) ->> 'phone_confirmed_at') is not null then x.phone end as phone
    into a
    from auth.users x
   where x.id = new.id and exists (select from identity.users u where u.id = x.id);
  if a.email ~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$' and length(a.email) <= 254 then
    perform private.crm_verify_identifier(new.id, 'email', a.email, case when signup then 'signup' else 'email_confirmed' end);
  end if;
  if private.crm_auth_phone(a.phone) is not null then
    perform private.crm_verify_identifier(new.id, 'phone', private.crm_auth_phone(a.phone),
                                          case when signup then 'signup' else 'phone_confirmed' end);
  end if;
  -- An email or phone the user no longer holds is no longer verified.
  if not signup then
    perform private.crm_reverify(l.person_id) from crm.user_person_links l where l.user_id = new.id;
  end if;
  return null;
end
$fn$;
comment on function private.link_user_to_person is 'Trigger on identity.users and auth.users: a user''s confirmed email and phone verify their CRM person and link them.';
{{ m.row_trigger('identity.users', 'link_user_to_person_trigger', 'after insert', 'private.link_user_to_person') }}

-- Organization data -------------------------------------------------------------------

-- private.org_clients_guard() -> trigger
-- BEFORE INSERT or UPDATE on org_clients. The organization's own record:
-- names trimmed, email lower-cased, phone in E.164 (22023 otherwise). A
-- client inserted with a key its caller got from upsert_person (and no
-- names or contact of its own) takes what was typed there, and the key
-- forgets it; a key the caller may not use (not theirs, not one of their
-- organizations' clients') is replaced. The person follows the record
-- (crm_client_person) on insert and when the email or phone changes to
-- another (removing both keeps it); moving, the organization's own
-- consent records go along. Search text from the record; lifetime value
-- starts at 0 and changes only by the payments trigger; nobody else sets
-- the person, the search text or the lifetime value (23514). Notes are a
-- JSON array whose entries ({text} or a string) get an id, created_at and
-- author_id: a new note's from the database, an existing note (same id)
-- keeps its own.
create or replace function private.org_clients_guard()
  returns trigger
  language plpgsql
  {{ m.definer() }}
as $fn$
begin
  if tg_op = 'INSERT' then
    if (new.first_name, new.last_name, new.email, new.phone_e164) is not distinct from (null, null, null, null) then
      update crm.people k
         set first_name = null, last_name = null, primary_email = null, primary_phone_e164 = null
        from crm.people typed
       where k.id = new.person_id and typed.id = k.id and k.verified_at is null
         and (k.created_by = auth.uid() or private.is_trusted_caller())
      returning typed.first_name, typed.last_name, typed.primary_email, typed.primary_phone_e164
        into new.first_name, new.last_name, new.email, new.phone_e164;
    end if;
    -- A key the caller may use: their own (upsert_person), or one of a
    -- client of an organization where they hold crm.write; any other is
    -- replaced (nobody attaches a client to another organization's key).
    if new.person_id is not null and not private.is_trusted_caller()
       and not exists (select from crm.people k where k.id = new.person_id and k.created_by = auth.uid())
       and not exists (select from crm.org_clients oc where oc.person_id = new.person_id
                                                       and oc.organization_id = any (private.org_ids_with_permission('crm.write'))) then
      new.person_id := null;
    end if;
    new.ltv_cents := 0;
  elsif pg_trigger_depth() = 1 then
    if new.person_id <> old.person_id
       or (new.ltv_cents, new.search_name, new.search_contact) is distinct from (old.ltv_cents, old.search_name, old.search_contact) then
      raise exception 'org client %: its person, lifetime value and search text are kept by the database', old.id
        using errcode = '23514', constraint = 'org_clients_derived_columns';
    end if;
  end if;
  new.first_name := left(nullif(btrim(new.first_name), ''), 200);
  new.last_name := left(nullif(btrim(new.last_name), ''), 200);
  new.email := private.crm_normalize_email(new.email);
  new.phone_e164 := private.crm_normalize_phone(new.phone_e164);
  -- (A record whose email and phone are both removed, as erasure does,
  -- keeps its person: it names no one else.)
  if tg_op = 'INSERT' or (new.email, new.phone_e164) is distinct from (old.email, old.phone_e164)
                         and (new.email is not null or new.phone_e164 is not null) then
    new.person_id := private.crm_client_person(new.organization_id, new.id, new.person_id, new.email, new.phone_e164);
  end if;
  if tg_op = 'UPDATE' and new.person_id <> old.person_id then
    insert into crm.marketing_consents (person_id, channel, opted_in, source, recorded_by_organization_id, recorded_by, occurred_at)
    select distinct on (c.channel) new.person_id, c.channel, c.opted_in, c.source, c.recorded_by_organization_id, c.recorded_by, c.occurred_at
      from crm.marketing_consents c
     where c.person_id = old.person_id and c.recorded_by_organization_id = new.organization_id
     order by c.channel, c.occurred_at desc, c.id desc;
  end if;
  new.search_name := coalesce(private.crm_search_name(new.first_name, new.last_name), '');
  new.search_contact := coalesce(private.crm_search_contact(new.email, new.phone_e164), '');
  if tg_op = 'INSERT' or new.notes is distinct from old.notes then
    if jsonb_typeof(new.notes) = 'array' then
      if exists (select from jsonb_array_elements(new.notes) n
                  where not (jsonb_typeof(n) = 'string' or (jsonb_typeof(n) = 'object' and jsonb_typeof(n -> 'text') = 'string'))) then
        raise exception 'org client notes: each note is a string or an object with a text' using errcode = '22023';
      end if;
      -- A note already there keeps its id, time and author; a new one gets
      -- them from the database (a client cannot date or sign it).
      select coalesce(jsonb_agg(case when jsonb_typeof(n) = 'string' then jsonb_build_object('text', n #>> '{}') else n end
                                || case when prev.note is not null
                                        then jsonb_build_object('id', prev.note -> 'id', 'created_at', prev.note -> 'created_at',
                                                                'author_id', prev.note -> 'author_id')
                                        else jsonb_build_object('id', gen_random_uuid()::text, 'created_at', to_jsonb(now()) #>> '{}',
                                                                'author_id', auth.uid()::text) end
                                order by i), '[]')
        into new.notes
        from jsonb_array_elements(new.notes) with ordinality as a (n, i)
        left join lateral (select o as note from jsonb_array_elements(case when tg_op = 'UPDATE' then old.notes else '[]' end) as o
                            where jsonb_typeof(n) = 'object' and o ->> 'id' = n ->> 'id' limit 1) as prev on true;
      -- A note's id and time are a uuid and a timestamp (22P02 / 22007 otherwise).
      perform (n ->> 'id')::uuid, (n ->> 'created_at')::timestamptz from jsonb_array_elements(new.notes) as n;
    end if;
  end if;
  return new;
end
$fn$;
comment on function private.org_clients_guard is 'Trigger: org_clients'' own record normalized, its person, search text and lifetime value kept by the database, notes stamped.';
{{ m.row_trigger('crm.org_clients', 'guard', 'before insert or update', 'private.org_clients_guard') }}

-- private.jobs_guard() -> trigger
-- BEFORE INSERT or UPDATE on jobs: the person is the client's; a missing
-- price is the service's default (when the service is in the client's
-- currency; else 0). (The status machine: below, status_transitions.)
create or replace function private.jobs_guard()
  returns trigger
  language plpgsql
  {{ m.definer() }}
as $fn$
begin
  -- RLS decides after BEFORE triggers; answer as it would before looking
  -- anything up, so an outsider learns nothing from the error.
  if tg_op = 'INSERT' and not (private.is_trusted_caller() or private.has_permission(new.organization_id, 'crm.write')) then
    raise exception 'new row violates row-level security policy for table "jobs"' using errcode = '42501';
  end if;
  if tg_op = 'INSERT' or new.org_client_id <> old.org_client_id then
    select oc.person_id into new.person_id from crm.org_clients oc
     where oc.organization_id = new.organization_id and oc.id = new.org_client_id;
    if new.person_id is null then
      raise exception 'job: no client % in organization %', new.org_client_id, new.organization_id
        using errcode = '23503', constraint = 'jobs_client_fk';
    end if;
  end if;
  if tg_op = 'INSERT' then
    new.created_by := coalesce(new.created_by, auth.uid());
    if new.price_cents is null then
      select s.default_price_cents into new.price_cents
        from crm.services s join crm.org_clients oc on oc.organization_id = s.organization_id and oc.id = new.org_client_id
       where s.organization_id = new.organization_id and s.id = new.service_id and s.currency = oc.currency;
      new.price_cents := coalesce(new.price_cents, 0);
    end if;
  end if;
  return new;
end
$fn$;
comment on function private.jobs_guard is 'Trigger: a job''s person from its client, default price from its service.';
{{ m.row_trigger('crm.jobs', 'guard', 'before insert or update', 'private.jobs_guard') }}
-- Jobs: scheduled -> in_progress -> completed, any of them to canceled,
-- scheduled and in_progress <-> blocked; completed and canceled are final.
{{ m.status_transitions('crm.jobs', [('scheduled', 'in_progress'), ('scheduled', 'canceled'), ('scheduled', 'blocked'),
                                     ('in_progress', 'completed'), ('in_progress', 'canceled'), ('in_progress', 'blocked'),
                                     ('blocked', 'scheduled'), ('blocked', 'in_progress'), ('blocked', 'canceled')]) }}

-- private.invoices_guard() -> trigger
-- BEFORE UPDATE on invoices (the status machine: below): paid only when
-- succeeded payments cover the total (23514, invoices_paid_in_full); void
-- only without pending or succeeded payments (23514, invoices_void_unpaid). The
-- client, currency and total change only while draft, the total only by
-- the lines' trigger (23514, invoices_frozen). Stamps issued_at, paid_at.
-- BEFORE DELETE: only a draft is deleted (55000; void the others), unless
-- the organization itself goes (a cascade).
create or replace function private.invoices_guard()
  returns trigger
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  paid bigint;
begin
  if tg_op = 'DELETE' then
    if old.status <> 'draft' and pg_trigger_depth() = 1 then
      raise exception 'invoice % is %: only drafts are deleted (void it instead)', old.id, old.status using errcode = '55000';
    end if;
    return old;
  end if;
  if (new.org_client_id, new.currency) is distinct from (old.org_client_id, old.currency) and old.status <> 'draft'
     or new.total_cents <> old.total_cents and pg_trigger_depth() = 1 then
    raise exception 'invoice %: client, currency and total are fixed once issued, and the total is the sum of the lines', old.id
      using errcode = '23514', constraint = 'invoices_frozen';
  end if;
  if new.status <> old.status then
    select coalesce(sum(p.amount_cents), 0) into paid from crm.payments p
     where p.organization_id = new.organization_id and p.invoice_id = new.id and p.status = 'succeeded';
    if new.status = 'paid' and paid < new.total_cents then
      raise exception 'invoice %: % of % paid; record the payments first', old.id, paid, new.total_cents
        using errcode = '23514', constraint = 'invoices_paid_in_full';
    end if;
    if new.status = 'void' and (paid > 0 or exists (select from crm.payments p where p.organization_id = new.organization_id
                                                          and p.invoice_id = new.id and p.status = 'pending')) then
      raise exception 'invoice %: payments are pending or succeeded; settle or refund them before voiding', old.id
        using errcode = '23514', constraint = 'invoices_void_unpaid';
    end if;
    new.issued_at := case when new.status = 'draft' then null else coalesce(old.issued_at, now()) end;
    new.paid_at := case when new.status = 'paid' then now() end;
  end if;
  return new;
end
$fn$;
comment on function private.invoices_guard is 'Trigger: CRM invoice state machine, frozen once issued, paid only in full.';
{{ m.row_trigger('crm.invoices', 'guard', 'before update or delete', 'private.invoices_guard') }}
{{ m.status_transitions('crm.invoices', [('draft', 'open'), ('draft', 'void'), ('open', 'paid'), ('open', 'void')]) }}

-- private.crm_reminders_wanted: the one statement of when reminders go
-- out. Each scheduled job: 24 h and 2 h before it starts; each open invoice
-- with a due date: 2 days before and on the due date, 09:00 in the
-- organization's billing time zone (UTC without one). The triggers below
-- and schedule_reminders create reminders from it (those still in the
-- future); filtered on a job or an invoice, it reads by index.
create or replace view private.crm_reminders_wanted as
select j.organization_id, j.id as subject_id, j.org_client_id, 'job_upcoming'::text as type, s.slot, j.id as job_id, null::uuid as invoice_id,
       j.start_at - s.lead as send_at, jsonb_build_object('job_id', j.id, 'start_at', j.start_at) as payload
  from crm.jobs j
 cross join (values ('job_24h', interval '24 hours'), ('job_2h', interval '2 hours')) as s (slot, lead)
 where j.status = 'scheduled'
union all
select i.organization_id, i.id, i.org_client_id, 'invoice_due', s.slot, null, i.id,
       ((i.due_date - s.days_before) + time '09:00') at time zone coalesce(b.time_zone, 'UTC'),
       jsonb_build_object('invoice_id', i.id, 'due_date', i.due_date, 'total_cents', i.total_cents, 'currency', i.currency)
  from crm.invoices i
  left join billing.settings b on b.organization_id = i.organization_id
 cross join (values ('invoice_2d', 2), ('invoice_due_day', 0)) as s (slot, days_before)
 where i.status = 'open' and i.due_date is not null;
comment on view private.crm_reminders_wanted is 'When reminders go out: 24 h and 2 h before a scheduled job, 2 days before and on the due date (09:00 local) of an open invoice.';
revoke all on private.crm_reminders_wanted from public, anon, authenticated;

-- private.crm_reminders_follow() -> trigger
-- AFTER INSERT or UPDATE OF status, start_at (jobs) / status, due_date
-- (invoices): the reminders of the job or invoice follow it. Those not yet
-- sent move to the new time (or come back, if canceled and still in the
-- future); missing future ones are created; when the job is no longer
-- scheduled or the invoice no longer open, pending ones are canceled.
create or replace function private.crm_reminders_follow()
  returns trigger
  language plpgsql
  {{ m.definer() }}
as $fn$
begin
  update crm.reminders r
     set send_at = w.send_at, payload = w.payload, status = 'pending', lease_until = null
    from private.crm_reminders_wanted w
   where r.organization_id = new.organization_id and r.subject_id = new.id
     and w.organization_id = new.organization_id and w.subject_id = new.id and w.slot = r.slot
     and (r.status = 'pending' or (r.status = 'canceled' and w.send_at > now()));
  update crm.reminders r set status = 'canceled', lease_until = null
   where r.organization_id = new.organization_id and r.subject_id = new.id and r.status = 'pending'
     and not exists (select from private.crm_reminders_wanted w
                      where w.organization_id = new.organization_id and w.subject_id = new.id and w.slot = r.slot);
  insert into crm.reminders (organization_id, org_client_id, type, slot, job_id, invoice_id, send_at, payload)
  select w.organization_id, w.org_client_id, w.type, w.slot, w.job_id, w.invoice_id, w.send_at, w.payload
    from private.crm_reminders_wanted w
   where w.organization_id = new.organization_id and w.subject_id = new.id and w.send_at > now()
  on conflict do nothing;
  return null;
end
$fn$;
comment on function private.crm_reminders_follow is 'Trigger: a job''s or invoice''s reminders follow its status and time (crm_reminders_wanted).';
revoke all on function private.crm_reminders_follow from public, anon;
drop trigger if exists reminders on crm.jobs;
create trigger reminders
  after insert or update of status, start_at on crm.jobs
  for each row execute function private.crm_reminders_follow();
drop trigger if exists reminders on crm.invoices;
create trigger reminders
  after insert or update of status, due_date on crm.invoices
  for each row execute function private.crm_reminders_follow();

-- private.invoice_lines_total() -> trigger
-- AFTER INSERT, UPDATE or DELETE on invoice_lines: only a draft invoice's
-- lines change (55000; the invoice row is locked), and the invoice's total
-- is the sum of its lines. An AFTER trigger, so that RLS has refused an
-- outsider before anything about the invoice is read.
create or replace function private.invoice_lines_total()
  returns trigger
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  org uuid := coalesce(new.organization_id, old.organization_id);
  inv uuid := coalesce(new.invoice_id, old.invoice_id);
  st text;
begin
  select i.status into st from crm.invoices i where i.organization_id = org and i.id = inv for no key update;
  if st is not null and st <> 'draft' then
    raise exception 'invoice % is %: its lines are fixed', inv, st using errcode = '55000';
  end if;
  update crm.invoices i
     set total_cents = (select coalesce(sum(l.amount_cents), 0) from crm.invoice_lines l where l.organization_id = org and l.invoice_id = inv)
   where i.organization_id = org and i.id = inv;
  return null;
end
$fn$;
comment on function private.invoice_lines_total is 'Trigger: lines of draft invoices only; the invoice total is the sum of its lines.';
drop trigger if exists draft_only on crm.invoice_lines;
{{ m.row_trigger('crm.invoice_lines', 'total', 'after insert or update or delete', 'private.invoice_lines_total') }}

-- private.payments_guard() -> trigger
-- BEFORE INSERT, UPDATE or DELETE on payments. Insert: pending, succeeded
-- or failed. Update (the status machine: below): amount, invoice and currency never
-- change (23514, payments_frozen). Delete: only a pending or failed
-- payment (55000). Stamps captured_at and refunded_at. (What needs the
-- invoice is checked after the row passed RLS: payments_effects.)
create or replace function private.payments_guard()
  returns trigger
  language plpgsql
  {{ m.definer() }}
as $fn$
begin
  if tg_op = 'DELETE' then
    if old.status in ('succeeded', 'refunded') and pg_trigger_depth() = 1 then
      raise exception 'payment % is %: it is kept (refund it instead)', old.id, old.status using errcode = '55000';
    end if;
    return old;
  end if;
  if tg_op = 'INSERT' then
    if new.status = 'refunded' then
      raise exception 'a payment is recorded as pending, succeeded or failed' using errcode = '23514', constraint = 'payments_status_transition';
    end if;
  else
    if (new.amount_cents, new.invoice_id, new.currency) is distinct from (old.amount_cents, old.invoice_id, old.currency) then
      raise exception 'payment %: amount, invoice and currency are fixed', old.id using errcode = '23514', constraint = 'payments_frozen';
    end if;
  end if;
  new.captured_at := case when new.status in ('succeeded', 'refunded') then coalesce(new.captured_at, now()) end;
  new.refunded_at := case when new.status = 'refunded' then coalesce(new.refunded_at, now()) end;
  return new;
end
$fn$;
comment on function private.payments_guard is 'Trigger: payments only on open invoices, never over the open amount; their state machine.';
{{ m.row_trigger('crm.payments', 'guard', 'before insert or update or delete', 'private.payments_guard') }}
{{ m.status_transitions('crm.payments', [('pending', 'succeeded'), ('pending', 'failed'), ('succeeded', 'refunded')]) }}

-- private.payments_effects() -> trigger
-- AFTER INSERT or UPDATE OF status on payments. A new payment: the invoice
-- is open (55000) and its pending plus succeeded payments stay within its
-- total (23514, payments_within_open_amount; the invoice row is locked FOR
-- NO KEY UPDATE, which the foreign-key checks' KEY SHARE does not block, so
-- two payments at once cannot both fit). Then the client's lifetime value
-- gains a succeeded payment and loses a refunded one, and an invoice whose
-- succeeded payments reach its total becomes paid.
create or replace function private.payments_effects()
  returns trigger
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  delta bigint := (case when new.status = 'succeeded' then new.amount_cents else 0 end)
                - (case when tg_op = 'UPDATE' and old.status = 'succeeded' then old.amount_cents else 0 end);
  inv record;
  claimed bigint;
begin
  if tg_op = 'INSERT' or new.status = 'succeeded' and old.status <> 'succeeded' then
    select i.status, i.total_cents into inv from crm.invoices i
     where i.organization_id = new.organization_id and i.id = new.invoice_id for no key update;
    if inv.status is distinct from 'open' then
      raise exception 'invoice % is %: payments are taken on open invoices', new.invoice_id, coalesce(inv.status, 'missing')
        using errcode = '55000';
    end if;
    select coalesce(sum(p.amount_cents), 0) into claimed from crm.payments p
     where p.organization_id = new.organization_id and p.invoice_id = new.invoice_id and p.status in ('pending', 'succeeded');
    if claimed > inv.total_cents then
      raise exception 'payment of % exceeds the open amount % of invoice %', new.amount_cents,
                      inv.total_cents - (claimed - case when new.status in ('pending', 'succeeded') then new.amount_cents else 0 end), new.invoice_id
        using errcode = '23514', constraint = 'payments_within_open_amount';
    end if;
  end if;
  if delta <> 0 then
    update crm.org_clients oc set ltv_cents = oc.ltv_cents + delta
      from crm.invoices i
     where i.organization_id = new.organization_id and i.id = new.invoice_id
       and oc.organization_id = i.organization_id and oc.id = i.org_client_id;
  end if;
  if new.status = 'succeeded' then
    update crm.invoices i set status = 'paid'
     where i.organization_id = new.organization_id and i.id = new.invoice_id and i.status = 'open'
       and i.total_cents <= (select coalesce(sum(p.amount_cents), 0) from crm.payments p
                              where p.organization_id = new.organization_id and p.invoice_id = new.invoice_id and p.status = 'succeeded');
  end if;
  return null;
end
$fn$;
comment on function private.payments_effects is 'Trigger: lifetime value from succeeded payments; an invoice paid in full becomes paid.';
{{ m.row_trigger('crm.payments', 'effects', 'after insert or update of status', 'private.payments_effects') }}

-- private.campaign_sends_opted_in() -> trigger
-- BEFORE INSERT on campaign_sends: the person has opted in on the
-- campaign's channel (23514, campaign_sends_opted_in).
create or replace function private.campaign_sends_opted_in()
  returns trigger
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  ch text;
begin
  select c.channel into ch from crm.campaigns c where c.organization_id = new.organization_id and c.id = new.campaign_id;
  if not private.crm_opted_in(new.person_id, ch, new.organization_id) then
    raise exception 'person % has not opted in to % messages', new.person_id, ch
      using errcode = '23514', constraint = 'campaign_sends_opted_in';
  end if;
  return new;
end
$fn$;
comment on function private.campaign_sends_opted_in is 'Trigger: a campaign send only to a person opted in on its channel.';
{{ m.row_trigger('crm.campaign_sends', 'opted_in', 'before insert', 'private.campaign_sends_opted_in') }}

-- Campaigns: draft -> queued -> canceled (and draft -> canceled).
{{ m.status_transitions('crm.campaigns', [('draft', 'queued'), ('draft', 'canceled'), ('queued', 'canceled')]) }}

{% for t in ['org_clients', 'org_client_settings', 'services', 'jobs', 'invoices', 'payments', 'campaigns'] %}
{{ m.updated_at('crm.' ~ t) }}
{% endfor %}

-- Booking ---------------------------------------------------------------------------

-- private.create_job_with_optional_new_client(p_organization_id uuid, p_org_client_id uuid,
--   p_client jsonb, p_service_id uuid, p_start_at timestamptz, p_end_at timestamptz,
--   p_price_cents bigint, p_notes text) -> jsonb
-- Seed 004's booking: with p_org_client_id, the job is for that client at
-- its default address; with p_client ({first_name, last_name, email,
-- phone, address: {...}}), the organization's own client with that email
-- (else that phone) is made active, or a new active client is recorded
-- with what was given (its person: org_clients_guard), and the address is
-- added to the organization's own record of the client
-- (crm.client_addresses). Only the organization's own records are looked
-- at: booking never merges into, reads or changes another organization's
-- client. Then the job, and its 24 h and 2 h reminders. All or nothing.
-- Returns {"success": true, "job": {...}}. Refuses: no crm.write in the
-- organization (42501); neither or both of p_org_client_id and p_client,
-- no p_start_at, a client without email or phone, bad email, phone or
-- address (22023); a client of another organization (P0002); an end before
-- the start (23514, jobs_end_after_start); a service of another
-- organization (23503).
create or replace function private.create_job_with_optional_new_client(p_organization_id uuid, p_org_client_id uuid, p_client jsonb,
  p_service_id uuid, p_start_at timestamptz, p_end_at timestamptz, p_price_cents bigint, p_notes text)
  returns jsonb
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  client_id uuid := p_org_client_id;
  v_email text;
  v_phone text;
  address uuid;
  person uuid;
  job crm.jobs;
begin
  perform private.require_member_or_platform(p_organization_id, 'crm.write', null);
  if (p_org_client_id is null) = (p_client is null) then
    raise exception 'create_job_with_optional_new_client: give p_org_client_id or p_client, not both' using errcode = '22023';
  end if;
  if p_start_at is null then
    raise exception 'create_job_with_optional_new_client: p_start_at is required' using errcode = '22023';
  end if;
  if p_client is not null then
    if jsonb_typeof(p_client) <> 'object' or p_client - array['first_name', 'last_name', 'email', 'phone', 'address'] <> '{}'::jsonb then
      raise exception 'p_client is an object with first_name, last_name, email, phone and address' using errcode = '22023';
    end if;
    v_email := private.crm_normalize_email(p_client ->> 'email');
    v_phone := private.crm_normalize_phone(p_client ->> 'phone');
    if v_email is null and v_phone is null then
      raise exception 'create_job_with_optional_new_client: a new client needs an email or a phone' using errcode = '22023';
    end if;
    client_id := (private.crm_own_client(array[p_organization_id], v_email, v_phone)).id;
    if client_id is null then
      insert into crm.org_clients (organization_id, status, first_name, last_name, email, phone_e164)
      values (p_organization_id, 'active', p_client ->> 'first_name', p_client ->> 'last_name', v_email, v_phone)
      returning id into client_id;
    else
      update crm.org_clients oc set status = 'active' where oc.organization_id = p_organization_id and oc.id = client_id;
    end if;
    if p_client ? 'address' and jsonb_typeof(p_client -> 'address') <> 'null' then
      insert into crm.client_addresses (organization_id, org_client_id, label, address1, address2, city, state, postal, country, lat, lng)
      select p_organization_id, client_id, r.label, r.address1, r.address2, r.city, r.state, r.postal, r.country, r.lat, r.lng
        from jsonb_populate_record(null::crm.client_addresses, private.crm_check_address(p_client -> 'address')) r
      returning id into address;
      update crm.org_clients oc set default_address_id = address
       where oc.organization_id = p_organization_id and oc.id = client_id and oc.default_address_id is null;
    end if;
  end if;
  select oc.person_id, coalesce(address, oc.default_address_id) into person, address
    from crm.org_clients oc where oc.organization_id = p_organization_id and oc.id = client_id;
  if person is null then
    raise exception 'create_job_with_optional_new_client: no client % in organization %', client_id, p_organization_id
      using errcode = 'P0002';
  end if;
  insert into crm.jobs (organization_id, org_client_id, service_id, address_id, start_at, end_at, price_cents, notes)
  values (p_organization_id, client_id, p_service_id, address, p_start_at, p_end_at, p_price_cents, p_notes)
  returning * into job;
  return jsonb_build_object('success', true, 'job', to_jsonb(job));
end
$fn$;
comment on function private.create_job_with_optional_new_client is 'Definer twin of create_job_with_optional_new_client.';
{{ m.private_grants('create_job_with_optional_new_client') }}
{{ m.api_function('create_job_with_optional_new_client',
   'p_organization_id uuid, p_org_client_id uuid default null, p_client jsonb default null, p_service_id uuid default null, p_start_at timestamptz default null, p_end_at timestamptz default null, p_price_cents bigint default null, p_notes text default null',
   'jsonb', 'p_organization_id, p_org_client_id, p_client, p_service_id, p_start_at, p_end_at, p_price_cents, p_notes',
   'Books a job for an existing client (p_org_client_id) or a new one (p_client: first_name, last_name, email, phone, address), with its 24 h and 2 h reminders, all or nothing; returns {success, job}. Needs crm.write (42501); bad request: 22023; client of another organization: P0002; end before start: 23514.') }}

-- Reminders ---------------------------------------------------------------------------

-- private.crm_require_worker(what text, p_worker text, p_batch_size integer, p_lease interval) -> void
-- The checks of every sending worker's call: a trusted caller (42501), a
-- worker name, a batch of 1 to 1000 and a lease of 10 s to 1 h (22023).
-- Calls without a batch or lease (scheduling, completing) pass fixed ones.
create or replace function private.crm_require_worker(what text, p_worker text, p_batch_size integer, p_lease interval)
  returns void
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
begin
  if not private.is_trusted_caller() then
    raise exception '%: for the back end (service_role, pg_cron, the sending worker) only', what using errcode = '42501';
  end if;
  if coalesce(btrim(p_worker), '') = '' or length(p_worker) > 200 or p_batch_size not between 1 and 1000
     or p_lease not between interval '10 seconds' and interval '1 hour' then
    raise exception '%: a worker name, a batch of 1 to 1000 and a lease of 10 s to 1 h', what using errcode = '22023';
  end if;
end
$fn$;
comment on function private.crm_require_worker is 'Raises 42501 for an untrusted caller and 22023 for a bad worker name, batch or lease.';
{{ m.private_grants('crm_require_worker', 'service_role') }}

-- private.schedule_reminders(p_now timestamptz) -> integer
-- The reminder scheduler (seed 004, every 15 minutes): creates the
-- reminders that should exist and do not (24 h and 2 h before each
-- scheduled job, 2 days before and on the due date of each open invoice,
-- while still in the future) and cancels pending ones whose job is no
-- longer scheduled or has started, or whose invoice is no longer open.
-- Returns how many it created. Running it twice creates nothing more.
-- Refuses: a caller that is not trusted (42501).
create or replace function private.schedule_reminders(p_now timestamptz)
  returns integer
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  now_at timestamptz := coalesce(p_now, now());
  created integer;
begin
  perform private.crm_require_worker('schedule_reminders', 'scheduler', 1, interval '1 minute');
  -- No longer wanted (job not scheduled, invoice not open), or too late
  -- (the job has started): canceled.
  update crm.reminders r set status = 'canceled', lease_until = null
   where r.status = 'pending'
     and not exists (select from private.crm_reminders_wanted w
                      where w.organization_id = r.organization_id and w.subject_id = r.subject_id
                        and w.slot = r.slot);
  update crm.reminders r set status = 'canceled', lease_until = null
    from crm.jobs j
   where r.status = 'pending' and j.organization_id = r.organization_id and j.id = r.job_id and j.start_at <= now_at;
  insert into crm.reminders (organization_id, org_client_id, type, slot, job_id, invoice_id, send_at, payload)
  select w.organization_id, w.org_client_id, w.type, w.slot, w.job_id, w.invoice_id, w.send_at, w.payload
    from private.crm_reminders_wanted w
   where w.send_at > now_at
  on conflict do nothing;
  get diagnostics created = row_count;
  return created;
end
$fn$;
comment on function private.schedule_reminders is 'Definer twin of schedule_reminders.';
{{ m.private_grants('schedule_reminders') }}
{{ m.api_function('schedule_reminders', 'p_now timestamptz default now()', 'integer', 'p_now',
   'The reminder scheduler: creates the missing job (24 h, 2 h) and invoice (2 days, due day) reminders, cancels those no longer due; returns how many it created. Back end only (42501). pg_cron runs it every 15 minutes where installed.') }}

-- private.claim_reminders(p_worker text, p_batch_size integer, p_lease interval, p_look_ahead interval)
--   -> table (reminder_id, organization_id, org_client_id, type, slot, send_at, payload, attempts,
--             first_name, last_name, email, phone_e164)
-- A sending worker's batch: pending reminders due within p_look_ahead
-- (default 15 minutes: a worker run every 15 minutes sends each reminder
-- before its time, never up to 15 minutes late) that nobody holds (FOR
-- UPDATE SKIP LOCKED, so two workers never claim the same one), oldest
-- first, with the contact to send to (the organization's own record of
-- its client); each is leased to the worker for
-- p_lease (a worker that dies lets them go). A reminder whose job is not
-- scheduled or whose invoice is not open is never claimed. Refuses: a
-- caller that is not trusted (42501); a batch outside 1..1000, a lease
-- outside 10 s..1 h, a look-ahead outside 0..1 h or no worker name (22023).
-- The look-ahead came in a later release: the three-argument versions go.
drop function if exists {{ api }}.claim_reminders(text, integer, interval);
drop function if exists private.claim_reminders(text, integer, interval);
create or replace function private.claim_reminders(p_worker text, p_batch_size integer, p_lease interval, p_look_ahead interval)
  returns table (reminder_id uuid, organization_id uuid, org_client_id uuid, type text, slot text, send_at timestamptz, payload jsonb,
                 attempts integer, first_name text, last_name text, email text, phone_e164 text)
  language plpgsql
  {{ m.definer() }}
as $fn$
begin
  perform private.crm_require_worker('claim_reminders', p_worker, coalesce(p_batch_size, 0), coalesce(p_lease, interval '0'));
  if p_look_ahead is null or p_look_ahead not between interval '0' and interval '1 hour' then
    raise exception 'claim_reminders: the look-ahead must be between 0 and 1 hour (got %)', p_look_ahead using errcode = '22023';
  end if;
  return query
  with due as (
    select r.organization_id, r.id
      from crm.reminders r
     where r.status = 'pending' and r.send_at <= now() + p_look_ahead
       and (r.lease_until is null or r.lease_until < now())
       and (r.job_id is null or exists (select from crm.jobs j where j.organization_id = r.organization_id and j.id = r.job_id
                                                                  and j.status = 'scheduled' and j.start_at > now()))
       and (r.invoice_id is null or exists (select from crm.invoices i where i.organization_id = r.organization_id and i.id = r.invoice_id
                                                                      and i.status = 'open'))
     order by r.send_at
     limit p_batch_size
       for update of r skip locked
  ), claimed as (
    update crm.reminders r
       set lease_until = now() + p_lease, claimed_by = p_worker, attempts = r.attempts + 1
      from due
     where r.organization_id = due.organization_id and r.id = due.id
    returning r.*
  )
  select c.id, c.organization_id, c.org_client_id, c.type, c.slot, c.send_at, c.payload, c.attempts,
         oc.first_name, oc.last_name, oc.email, oc.phone_e164
    from claimed c
    join crm.org_clients oc on oc.organization_id = c.organization_id and oc.id = c.org_client_id
   order by c.send_at;
end
$fn$;
comment on function private.claim_reminders is 'Definer twin of claim_reminders.';
{{ m.private_grants('claim_reminders') }}
{{ m.api_function('claim_reminders', "p_worker text, p_batch_size integer default 100, p_lease interval default '5 minutes', p_look_ahead interval default '15 minutes'",
   'table (reminder_id uuid, organization_id uuid, org_client_id uuid, type text, slot text, send_at timestamptz, payload jsonb, attempts integer, first_name text, last_name text, email text, phone_e164 text)',
   'p_worker, p_batch_size, p_lease, p_look_ahead',
   'A sending worker\'s batch of reminders due within the look-ahead (default 15 minutes, the scheduler\'s interval) with the contact to send to, leased to it (SKIP LOCKED: two workers never share one). Back end only (42501); bad batch, lease or look-ahead: 22023.') }}

-- Campaigns ---------------------------------------------------------------------------

-- private.queue_campaign_sends(p_campaign_id uuid) -> integer
-- Materializes a campaign: one queued send per client of the segment
-- (statuses, any of the tags) whose person has opted in on the campaign's
-- channel, once per person (running it again adds only new matches); the
-- campaign becomes queued. Returns how many sends it added. Refuses: no
-- such campaign in an organization where the caller holds crm.campaigns
-- (P0002); a canceled campaign (55000).
create or replace function private.queue_campaign_sends(p_campaign_id uuid)
  returns integer
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  c crm.campaigns;
  added integer;
begin
  select * into c from crm.campaigns x
   where x.id = p_campaign_id
     and (private.is_trusted_caller() or x.organization_id = any (private.org_ids_with_permission('crm.campaigns')))
   limit 1
     for no key update;
  if c.id is null then
    raise exception 'queue_campaign_sends: no campaign %', p_campaign_id using errcode = 'P0002';
  end if;
  if c.status = 'canceled' then
    raise exception 'campaign % is canceled', p_campaign_id using errcode = '55000';
  end if;
  insert into crm.campaign_sends (organization_id, campaign_id, org_client_id, person_id)
  select oc.organization_id, c.id, oc.id, oc.person_id
    from crm.org_clients oc
   where oc.organization_id = c.organization_id
     and (not c.segment ? 'status' or oc.status in (select jsonb_array_elements_text(c.segment -> 'status')))
     and (not c.segment ? 'tags' or oc.tags && array(select jsonb_array_elements_text(c.segment -> 'tags')))
     and private.crm_opted_in(oc.person_id, c.channel, c.organization_id)
  on conflict (organization_id, campaign_id, person_id) do nothing;
  get diagnostics added = row_count;
  update crm.campaigns x set status = 'queued' where x.organization_id = c.organization_id and x.id = c.id and x.status = 'draft';
  return added;
end
$fn$;
comment on function private.queue_campaign_sends is 'Definer twin of queue_campaign_sends.';
{{ m.private_grants('queue_campaign_sends') }}
{{ m.api_function('queue_campaign_sends', 'p_campaign_id uuid', 'integer', 'p_campaign_id',
   'One queued send per client of the campaign\'s segment who opted in on its channel, once per person; returns how many were added. Unknown campaign, or not in an organization where the caller holds crm.campaigns: P0002; canceled: 55000.') }}

-- private.claim_campaign_sends(p_worker text, p_batch_size integer, p_lease interval)
--   -> table (send_id, organization_id, campaign_id, channel, template, person_id, first_name, last_name, email, phone_e164, attempts)
-- A sending worker's batch, like claim_reminders: queued sends of queued
-- campaigns whose time has come, not held by another worker, with the
-- address to send to (the organization's own record of its client). A person who opted out since the send was queued is
-- not sent to: that send is marked failed ('opted out') instead.
-- Refuses: not trusted (42501); bad batch or lease (22023).
create or replace function private.claim_campaign_sends(p_worker text, p_batch_size integer, p_lease interval)
  returns table (send_id uuid, organization_id uuid, campaign_id uuid, channel text, template jsonb, person_id uuid,
                 first_name text, last_name text, email text, phone_e164 text, attempts integer)
  language plpgsql
  {{ m.definer() }}
as $fn$
begin
  perform private.crm_require_worker('claim_campaign_sends', p_worker, coalesce(p_batch_size, 0), coalesce(p_lease, interval '0'));
  return query
  with due as (
    select s.organization_id, s.id, private.crm_opted_in(s.person_id, c.channel, s.organization_id) as opted_in
      from crm.campaign_sends s
      join crm.campaigns c on c.organization_id = s.organization_id and c.id = s.campaign_id
     where s.status = 'queued' and (s.lease_until is null or s.lease_until < now())
       and c.status = 'queued' and coalesce(c.scheduled_at, '-infinity') <= now()
     order by s.created_at
     limit p_batch_size
       for update of s skip locked
  ), claimed as (
    update crm.campaign_sends s
       set lease_until = case when due.opted_in then now() + p_lease end,
           claimed_by = p_worker, attempts = s.attempts + 1,
           status = case when due.opted_in then 'queued' else 'failed' end,
           error = case when due.opted_in then s.error else 'opted out' end
      from due
     where s.organization_id = due.organization_id and s.id = due.id
    returning s.*
  )
  select s.id, s.organization_id, s.campaign_id, c.channel, c.template, s.person_id,
         oc.first_name, oc.last_name, oc.email, oc.phone_e164, s.attempts
    from claimed s
    join crm.campaigns c on c.organization_id = s.organization_id and c.id = s.campaign_id
    join crm.org_clients oc on oc.organization_id = s.organization_id and oc.id = s.org_client_id
   where s.status = 'queued'
   order by s.created_at;
end
$fn$;
comment on function private.claim_campaign_sends is 'Definer twin of claim_campaign_sends.';
{{ m.private_grants('claim_campaign_sends') }}
{{ m.api_function('claim_campaign_sends', "p_worker text, p_batch_size integer default 100, p_lease interval default '5 minutes'",
   'table (send_id uuid, organization_id uuid, campaign_id uuid, channel text, template jsonb, person_id uuid, first_name text, last_name text, email text, phone_e164 text, attempts integer)',
   'p_worker, p_batch_size, p_lease',
   'A sending worker\'s batch of queued campaign sends (SKIP LOCKED), to people still opted in. Back end only (42501); bad batch or lease: 22023.') }}

-- private.complete_reminder(p_reminder_id uuid, p_worker text, p_error text) -> void
-- private.complete_campaign_send(p_send_id uuid, p_worker text, p_error text) -> void
-- The sending worker's report on what it claimed: sent (p_error null) or
-- failed with the error. Only the worker holding the current lease
-- reports: a slow worker whose lease ran out (and was perhaps taken over
-- by another) cannot report twice. Refuses: not trusted (42501); no worker
-- name (22023); unknown, or no longer waiting (pending reminder, queued
-- send) (P0002); nobody claimed it, another worker holds it, or the lease
-- ran out (55000: claim it again).
{% for name, param, tbl, waiting, what in [('complete_reminder', 'p_reminder_id', 'crm.reminders', 'pending', 'reminder'),
                                            ('complete_campaign_send', 'p_send_id', 'crm.campaign_sends', 'queued', 'campaign send')] %}
create or replace function private.{{ name }}({{ param }} uuid, p_worker text, p_error text)
  returns void
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  held record;
begin
  perform private.crm_require_worker('{{ name }}', p_worker, 1, interval '1 minute');
  update {{ tbl }} t
     set status = case when p_error is null then 'sent' else 'failed' end,
         sent_at = case when p_error is null then now() end,
         error = left(p_error, 10000), lease_until = null
   where t.id = {{ param }} and t.status = '{{ waiting }}' and t.claimed_by = p_worker and t.lease_until > now();
  if not found then
    select t.status, t.claimed_by, t.lease_until into held from {{ tbl }} t where t.id = {{ param }} limit 1;
    if held.status is distinct from '{{ waiting }}' then
      raise exception '{{ name }}: no {{ waiting }} {{ what }} %', {{ param }} using errcode = 'P0002';
    end if;
    raise exception '{{ name }}: {{ what }} % is not leased to %: %', {{ param }}, p_worker,
      case when held.lease_until is null then 'nobody holds it'
           when held.claimed_by <> p_worker then 'another worker claimed it'
           else format('its lease ran out at %s', held.lease_until) end
      using errcode = '55000', hint = 'Claim it again before reporting on it.';
  end if;
end
$fn$;
comment on function private.{{ name }} is 'Definer twin of {{ name }}.';
{{ m.private_grants(name) }}
{{ m.api_function(name, param ~ ' uuid, p_worker text, p_error text default null', 'void', param ~ ', p_worker, p_error',
   'Marks a claimed ' ~ what ~ ' sent (no p_error) or failed with the error; only the worker (p_worker) holding its current lease. Back end only (42501); unknown or not ' ~ waiting ~ ': P0002; not leased to this worker, or the lease ran out: 55000.') }}
{% endfor %}

-- Reading -------------------------------------------------------------------------------

-- private.crm_client_events(organization_id uuid, org_client_id uuid, person_id uuid, currency char(3),
--   p_limit integer, p_before timestamptz, issued_only boolean)
--   -> table (id uuid, type text, created_at timestamptz, shared jsonb, internal jsonb)
-- A client's jobs, invoices (issued_only: not drafts) and payments, the
-- newest p_limit of each older than p_before, split into what the
-- organization shares with its client (shared: statuses, times, amounts,
-- the service and address ids) and what it keeps for itself (internal:
-- notes). The one statement of both: client_timeline shows shared ||
-- internal to the organization, my_service_history shared to the client.
-- Not pinned, so that Postgres inlines it into its callers' statements
-- (their plans are the hand-written union's); every name in it is
-- schema-qualified, and only service_role (and the definer callers) may
-- execute it. The callers check who asks. Refuses nothing.
create or replace function private.crm_client_events(organization_id uuid, org_client_id uuid, person_id uuid, currency char(3),
  p_limit integer, p_before timestamptz, issued_only boolean)
  returns table (id uuid, type text, created_at timestamptz, shared jsonb, internal jsonb)
  language sql
  stable
as $fn$
  (select j.id, 'job'::text, j.created_at,
          jsonb_build_object('status', j.status, 'start_at', j.start_at, 'end_at', j.end_at, 'price_cents', j.price_cents,
                             'service_id', j.service_id, 'address_id', j.address_id),
          jsonb_build_object('notes', j.notes)
     from crm.jobs j
    where j.organization_id = $1 and j.org_client_id = $2 and j.person_id = $3 and j.created_at < coalesce($6, 'infinity')
    order by j.created_at desc limit $5)
  union all
  (select i.id, 'invoice', i.created_at,
          jsonb_build_object('status', i.status, 'total_cents', i.total_cents, 'currency', i.currency, 'due_date', i.due_date),
          jsonb_build_object('notes', i.notes)
     from crm.invoices i
    where i.organization_id = $1 and i.org_client_id = $2 and i.currency = $4 and i.created_at < coalesce($6, 'infinity')
      and (not $7 or i.status <> 'draft')
    order by i.created_at desc limit $5)
  union all
  (select p.id, 'payment', p.created_at,
          jsonb_build_object('invoice_id', p.invoice_id, 'status', p.status, 'amount_cents', p.amount_cents, 'currency', p.currency,
                             'captured_at', p.captured_at),
          '{}'::jsonb
     from crm.invoices i
     join crm.payments p on p.organization_id = i.organization_id and p.invoice_id = i.id and p.currency = i.currency
    where i.organization_id = $1 and i.org_client_id = $2 and i.currency = $4 and p.created_at < coalesce($6, 'infinity')
      and (not $7 or i.status <> 'draft')
    order by p.created_at desc limit $5)
$fn$;
comment on function private.crm_client_events is 'A client''s jobs, invoices and payments: what the organization shares with the client, and what it keeps (notes).';
{{ m.private_grants('crm_client_events', 'service_role') }}

-- private.crm_readable_client(what text, org_client_id uuid) -> crm.org_clients
-- A client the caller may read: of an organization where they hold
-- crm.read (or the caller is trusted). Refuses (P0002) an unknown client
-- and one of another organization alike, so that its existence is not
-- disclosed.
create or replace function private.crm_readable_client(what text, org_client_id uuid)
  returns crm.org_clients
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
declare
  c crm.org_clients;
begin
  select * into c from crm.org_clients oc
   where oc.id = crm_readable_client.org_client_id
     and (private.is_trusted_caller() or oc.organization_id = any (private.org_ids_with_permission('crm.read')))
   limit 1;
  if c.id is null then
    raise exception '%: no client %', what, org_client_id using errcode = 'P0002';
  end if;
  return c;
end
$fn$;
comment on function private.crm_readable_client is 'A client of an organization where the caller holds crm.read; P0002 otherwise, as for an unknown one.';
{{ m.private_grants('crm_readable_client', 'service_role') }}

-- private.client_timeline(p_org_client_id uuid, p_limit integer, p_before timestamptz)
--   -> table (id uuid, type text, created_at timestamptz, data jsonb)
-- Seed 004's timeline of a client: jobs, invoices, payments
-- (crm_client_events, with the organization's notes on them) and the
-- client's notes, newest first, p_limit rows (1..1000) older than p_before
-- (a page's last created_at; null: the newest). Refuses: an unknown
-- client, or one of an organization where the caller lacks crm.read
-- (P0002: the client's existence is not disclosed); a limit outside
-- 1..1000 (22023).
create or replace function private.client_timeline(p_org_client_id uuid, p_limit integer, p_before timestamptz)
  returns table (id uuid, type text, created_at timestamptz, data jsonb)
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
declare
  c crm.org_clients;
begin
  if p_limit is null or p_limit not between 1 and 1000 then
    raise exception 'client_timeline: p_limit is 1 to 1000' using errcode = '22023';
  end if;
  c := private.crm_readable_client('client_timeline', p_org_client_id);
  return query
  select e.id, e.type, e.created_at, e.data from (
    select x.id, x.type, x.created_at, x.shared || x.internal as data
      from private.crm_client_events(c.organization_id, p_org_client_id, c.person_id, c.currency, p_limit, p_before, false) x
    union all
    select (n ->> 'id')::uuid, 'note', (n ->> 'created_at')::timestamptz, n - 'id' - 'created_at'
      from jsonb_array_elements(c.notes) as n
     where (n ->> 'created_at')::timestamptz < coalesce(p_before, 'infinity')
  ) e
  order by e.created_at desc, e.id
  limit p_limit;
end
$fn$;
comment on function private.client_timeline is 'Definer twin of client_timeline.';
{{ m.private_grants('client_timeline') }}
{{ m.api_function('client_timeline', 'p_org_client_id uuid, p_limit integer default 100, p_before timestamptz default null',
   'table (id uuid, type text, created_at timestamptz, data jsonb)', 'p_org_client_id, p_limit, p_before',
   'A client\'s timeline: jobs, invoices, payments and notes, newest first ({id, type, created_at, data}); page with p_before. Needs crm.read in the client\'s organization (else P0002, as for an unknown client); p_limit 1..1000 (22023).', stable=true) }}

-- private.client_stats(p_org_id uuid, p_currency text) -> jsonb
-- Seed 004's six numbers for an organization: total, active, lead and
-- inactive clients, total and average lifetime value (minor units) of the
-- clients billed in p_currency, or in the one currency its clients use.
-- Refuses: no crm.read (42501); clients in several currencies and no
-- p_currency (22023, naming them).
create or replace function private.client_stats(p_org_id uuid, p_currency text)
  returns jsonb
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
declare
  s record;
begin
  perform private.require_member_or_platform(p_org_id, 'crm.read', 'platform.tenant.read');
  -- One pass grouped by status and currency (hashing; no collation-aware
  -- min/max over 100,000 rows), then the few groups are added up.
  select coalesce(sum(g.n), 0) as total, coalesce(sum(g.n) filter (where g.status = 'active'), 0) as active,
         coalesce(sum(g.n) filter (where g.status = 'lead'), 0) as lead,
         coalesce(sum(g.n) filter (where g.status = 'inactive'), 0) as inactive,
         min(g.currency) as low, max(g.currency) as high,
         sum(g.ltv) filter (where g.currency = coalesce(p_currency, g.currency)) as ltv,
         sum(g.n) filter (where g.currency = coalesce(p_currency, g.currency)) as ltv_clients
    into s
    from (select oc.status, oc.currency, count(*) as n, sum(oc.ltv_cents) as ltv
            from crm.org_clients oc
           where oc.organization_id = p_org_id
           group by oc.status, oc.currency) g;
  if p_currency is null and s.low <> s.high then
    raise exception 'client_stats: the organization''s clients are billed in several currencies (% ... %); pass p_currency', s.low, s.high
      using errcode = '22023';
  end if;
  return jsonb_build_object('total_clients', s.total, 'active_clients', s.active, 'lead_clients', s.lead,
                            'inactive_clients', s.inactive, 'total_ltv_cents', coalesce(s.ltv, 0),
                            'avg_ltv_cents', case when s.ltv_clients > 0 then round(s.ltv::numeric / s.ltv_clients)::bigint else 0 end,
                            'currency', coalesce(p_currency, s.low));
end
$fn$;
comment on function private.client_stats is 'Definer twin of client_stats.';
{{ m.private_grants('client_stats') }}
{{ m.api_function('client_stats', 'p_org_id uuid, p_currency text default null', 'jsonb', 'p_org_id, p_currency',
   'An organization\'s client statistics: total/active/lead/inactive clients, total and average lifetime value in minor units (and the currency). Needs crm.read (42501); clients in several currencies without p_currency: 22023.', stable=true) }}

-- private.search_clients(p_query text, p_org_id uuid, p_limit integer)
--   -> table (org_client_id, person_id, first_name, last_name, primary_email, primary_phone_e164, status, ltv_cents, tags, created_at)
-- Seed 004's client search, as the user types, over the organization's own
-- records of its clients: those that match, best first, p_limit rows
-- (1..100). The shape of the query picks the index:
--   * a whole email address: that email (an index lookup);
--   * @ and a domain (@gmail.com): the emails at that domain, by address;
--   * a whole phone number (10 digits or more, as typed): that number in
--     E.164 (an index lookup);
--   * another email fragment (has @) or phone fragment (3 digits or more,
--     and only phone characters): the fragment anywhere in the email or
--     phone digits, earliest first;
--   * one or two characters: names starting with them, in name order;
--   * else names by trigram word similarity, nearest first, down to 0.3 —
--     typo-tolerant ("smtih" finds Smith, "jonh" John).
-- Planned for each call's values (the best index differs per query).
-- Refuses: no crm.read (42501); an empty query or a limit outside 1..100
-- (22023).
create or replace function private.search_clients(p_query text, p_org_id uuid, p_limit integer)
  returns table (org_client_id uuid, person_id uuid, first_name text, last_name text, primary_email text,
                 primary_phone_e164 text, status text, ltv_cents bigint, tags text[], created_at timestamptz)
  language plpgsql
  stable
  {{ m.definer() }}
  set plan_cache_mode = force_custom_plan
  set pg_trgm.word_similarity_threshold = 0.3
as $fn$
declare
  q text := left(lower(btrim(p_query)), 200);
  digits text := regexp_replace(q, '[^0-9]', '', 'g');
  needle text;
begin
  perform private.require_member_or_platform(p_org_id, 'crm.read', 'platform.tenant.read');
  if coalesce(q, '') = '' or p_limit is null or p_limit not between 1 and 100 then
    raise exception 'search_clients: a query and a limit of 1 to 100' using errcode = '22023';
  end if;
  if q ~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$' then
    return query
    select c.id, c.person_id, c.first_name, c.last_name, c.email, c.phone_e164, c.status, c.ltv_cents, c.tags, c.created_at
      from crm.org_clients c
     where c.email = q and c.organization_id = p_org_id
     order by c.created_at, c.id
     limit p_limit;
  elsif q ~ '^@[^@[:space:]]+\.[^@[:space:]]+$' then
    return query
    select c.id, c.person_id, c.first_name, c.last_name, c.email, c.phone_e164, c.status, c.ltv_cents, c.tags, c.created_at
      from crm.org_clients c
     where c.organization_id = p_org_id and split_part(c.email, '@', 2) = substr(q, 2)
     order by c.email, c.id
     limit p_limit;
  elsif q ~ '^\+?[0-9 ().-]+$' and length(digits) between 10 and 15 then
    return query
    select c.id, c.person_id, c.first_name, c.last_name, c.email, c.phone_e164, c.status, c.ltv_cents, c.tags, c.created_at
      from crm.org_clients c
     where c.phone_e164 = private.crm_normalize_phone(q) and c.organization_id = p_org_id
     order by c.created_at, c.id
     limit p_limit;
  elsif q ~ '@' or (q ~ '^\+?[0-9 ().-]+$' and length(digits) >= 3) then
    needle := case when q ~ '@' then q else digits end;
    return query
    select c.id, c.person_id, c.first_name, c.last_name, c.email, c.phone_e164, c.status, c.ltv_cents, c.tags, c.created_at
      from crm.org_clients c
     where c.organization_id = p_org_id
       and c.search_contact like '%' || replace(replace(replace(needle, '\', '\\'), '%', '\%'), '_', '\_') || '%'
     order by strpos(c.search_contact, needle), c.search_contact, c.id
     limit p_limit;
  elsif length(q) < 3 then
    return query
    select c.id, c.person_id, c.first_name, c.last_name, c.email, c.phone_e164, c.status, c.ltv_cents, c.tags, c.created_at
      from crm.org_clients c
     where c.organization_id = p_org_id
       and c.search_name operator(pg_catalog.~>=~) q and c.search_name operator(pg_catalog.~<~) (q || chr(1114111))
     order by c.search_name using operator(pg_catalog.~<~), c.id
     limit p_limit;
  else
    return query
    select oc.id, oc.person_id, oc.first_name, oc.last_name, oc.email, oc.phone_e164, oc.status, oc.ltv_cents, oc.tags, oc.created_at
      from (select c.*, q operator(extensions.<<->) c.search_name as distance from crm.org_clients c
             where c.organization_id = p_org_id and q operator(extensions.<%) c.search_name
             order by q operator(extensions.<<->) c.search_name  -- the GiST index's order: no tie-breaker here
             limit p_limit) oc
     order by oc.distance, oc.id;
  end if;
end
$fn$;
comment on function private.search_clients is 'Definer twin of search_clients.';
{{ m.private_grants('search_clients') }}
{{ m.api_function('search_clients', 'p_query text, p_org_id uuid, p_limit integer default 25',
   'table (org_client_id uuid, person_id uuid, first_name text, last_name text, primary_email text, primary_phone_e164 text, status text, ltv_cents bigint, tags text[], created_at timestamptz)',
   'p_query, p_org_id, p_limit',
   'Searches the organization\'s own records of its clients by name, email or phone: a whole email or phone, or @domain, by index; fragments and names partial and typo-tolerant (trigram), ranked, p_limit rows (1..100). Needs crm.read (42501); empty query: 22023.', stable=true) }}

-- Privacy -----------------------------------------------------------------------------

-- private.export_person_data(p_person_id uuid) -> jsonb
-- Everything the inventory lists about a CRM person who may never have
-- signed up (access and portability requests of a client): the shared
-- record, contact points, addresses, the organizations' notes and job
-- notes, and their marketing consents. Refuses: not trusted and no
-- platform.privacy.manage (42501); unknown person (P0002).
create or replace function private.export_person_data(p_person_id uuid)
  returns jsonb
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
begin
  perform private.require_platform('platform.privacy.manage');
  if not exists (select from crm.people p where p.id = p_person_id) then
    raise exception 'export_person_data: no person %', p_person_id using errcode = 'P0002';
  end if;
  return private.export_subject(null, null, array[p_person_id], true);
end
$fn$;
comment on function private.export_person_data is 'Definer twin of export_person_data.';
{{ m.private_grants('export_person_data') }}
{{ m.api_function('export_person_data', 'p_person_id uuid', 'jsonb', 'p_person_id',
   'Everything held about a CRM person (a client who need not be a user), driven by privacy.data_inventory. Needs service_role or platform.privacy.manage (42501); unknown person: P0002.', stable=true) }}

-- private.erase_person(p_person_id uuid) -> uuid
-- Anonymizes a CRM person as the inventory says (names and contact
-- emptied, emails and phones deleted, addresses blanked but kept for the
-- jobs that took place there, notes emptied); invoices and payments keep
-- their amounts. Records the erasure; running it again changes nothing.
-- Refuses: not trusted and no platform.privacy.manage (42501); unknown
-- person (P0002).
create or replace function private.erase_person(p_person_id uuid)
  returns uuid
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  done record;
begin
  perform private.require_platform('platform.privacy.manage');
  if not exists (select from crm.people p where p.id = p_person_id) then
    raise exception 'erase_person: no person %', p_person_id using errcode = 'P0002';
  end if;
  if exists (select from privacy.person_erasures e where e.person_id = p_person_id) then
    return p_person_id;
  end if;
  select * into done from private.erase_subject(null, null, array[p_person_id]);
  insert into privacy.person_erasures (person_id, erased_by, columns_erased, rows_deleted)
  values (p_person_id, auth.uid(), done.columns_erased, done.rows_deleted);
  return p_person_id;
end
$fn$;
comment on function private.erase_person is 'Definer twin of erase_person.';
{{ m.private_grants('erase_person') }}
{{ m.api_function('erase_person', 'p_person_id uuid', 'uuid', 'p_person_id',
   'Anonymizes a CRM person per privacy.data_inventory and records it; safe to run twice. Needs service_role or platform.privacy.manage (42501); unknown person: P0002.') }}

-- pg_cron: where the extension is installed (Supabase; Debian's
-- postgresql-15-cron), the reminder scheduler runs every 15 minutes.
-- Elsewhere the README gives the cron line.
do $cron$
begin
  if exists (select from pg_catalog.pg_extension where extname = 'pg_cron') then
    perform cron.schedule('tenantdb-crm-reminders', '*/15 * * * *', 'select {{ api }}.schedule_reminders()');
  end if;
end
$cron$;
