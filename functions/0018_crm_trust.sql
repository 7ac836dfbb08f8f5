-- crm trust: what needs change 0018's columns and tables — the
-- confirmation trigger on auth.users, the organization's own addresses,
-- and what a provider and a homeowner see of each other: client_account
-- (a provider: does my client have an account, and did they change their
-- contact) and my_service_history (the client portal: a linked user's
-- jobs, invoices and payments from every provider that has them as a
-- verified client, without anything internal).
{% import 'sql/macros.sql' as m with context %}

-- A confirmed (or changed) email or phone of an auth user verifies it
-- (link_user_to_person, functions/0013_crm.sql).
drop trigger if exists link_user_to_person_trigger on auth.users;
create trigger link_user_to_person_trigger
  after update of email, email_confirmed_at, phone, phone_confirmed_at on auth.users
  for each row execute function private.link_user_to_person();

{{ m.updated_at('crm.client_addresses') }}

-- private.client_account(p_org_client_id uuid) -> jsonb
-- What a provider may know of its client's account: {"has_account": true,
-- "linked_since": ..., "contact_updated_at": ...} — whether the client is
-- a user (tied through an email or phone of the organization's record that
-- the person verified), since when, and when the person's own record last
-- changed (their correction, or a confirmed login email or phone: "the
-- client updated their contact": ask them, and update the organization's
-- record) — or {"has_account": false,
-- "linked_since": null, "contact_updated_at": null}. Never the person's
-- own names, email or phone: whoever types someone's email into a client
-- record would otherwise read them. Refuses: an unknown client, or one of
-- an organization where the caller lacks crm.read (P0002: its existence
-- is not disclosed).
create or replace function private.client_account(p_org_client_id uuid)
  returns jsonb
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
declare
  c crm.org_clients := private.crm_readable_client('client_account', p_org_client_id);
  linked timestamptz;
begin
  select min(l.linked_at) into linked from crm.user_person_links l where l.person_id = c.person_id;
  return jsonb_build_object('has_account', linked is not null, 'linked_since', linked,
    'contact_updated_at', (select p.updated_at from crm.people p where p.id = c.person_id and linked is not null));
end
$fn$;
comment on function private.client_account is 'Definer twin of client_account.';
{{ m.private_grants('client_account') }}
{{ m.api_function('client_account', 'p_org_client_id uuid', 'jsonb', 'p_org_client_id',
   'Whether your client has an account (tied through an email or phone they verified), since when, and when they last changed their own contact ({has_account, linked_since, contact_updated_at}); never their own names or contact. Needs crm.read in the client\'s organization (else P0002, as for an unknown client).', stable=true) }}

-- private.crm_service_history(people uuid[], p_limit integer, p_before timestamptz)
--   -> table (organization_id, organization_name, org_client_id, id, type, created_at, data)
-- What providers share with their client, for the given people: of each
-- client of theirs, crm_client_events' shared part of its jobs (with the
-- service's name, the currency and where), issued invoices and their
-- payments, newest first, p_limit rows older than p_before. Never notes,
-- custom fields, tags, drafts or another provider's records of the
-- client. The callers check who asks. Refuses nothing.
create or replace function private.crm_service_history(people uuid[], p_limit integer, p_before timestamptz)
  returns table (organization_id uuid, organization_name text, org_client_id uuid, id uuid, type text, created_at timestamptz, data jsonb)
  language sql
  stable
  {{ m.definer() }}
as $fn$
  select oc.organization_id, o.name, oc.id, e.id, e.type, e.created_at,
         case when e.type = 'job' then
           e.shared - 'service_id' - 'address_id'
             || jsonb_build_object('currency', oc.currency,
                  'service', (select s.name from crm.services s
                               where s.organization_id = oc.organization_id and s.id = (e.shared ->> 'service_id')::uuid),
                  'address', (select jsonb_build_object('address1', a.address1, 'address2', a.address2, 'city', a.city,
                                                        'state', a.state, 'postal', a.postal, 'country', a.country)
                                from crm.client_addresses a
                               where a.organization_id = oc.organization_id and a.org_client_id = oc.id
                                 and a.id = (e.shared ->> 'address_id')::uuid))
           else e.shared end
    from crm.org_clients oc
    join tenancy.organizations o on o.id = oc.organization_id
   cross join lateral private.crm_client_events(oc.organization_id, oc.id, oc.person_id, oc.currency, p_limit, p_before, true) e
   where oc.person_id = any (people) and o.status <> 'deleted'
   order by e.created_at desc, e.id
   limit p_limit
$fn$;
comment on function private.crm_service_history is 'What providers share with their client (jobs, issued invoices, payments; nothing internal), for the given people.';
{{ m.private_grants('crm_service_history', 'service_role') }}

-- private.my_service_history(p_limit integer, p_before timestamptz)
--   -> table (organization_id, organization_name, org_client_id, id, type, created_at, data)
-- The client portal: the signed-in user's service history from every
-- provider that has them as a verified client (their confirmed email or
-- phone is on the provider's record), as crm_service_history shares it.
-- Refuses: no signed-in user (42501); p_limit outside 1..1000 (22023).
create or replace function private.my_service_history(p_limit integer, p_before timestamptz)
  returns table (organization_id uuid, organization_name text, org_client_id uuid, id uuid, type text, created_at timestamptz, data jsonb)
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
begin
  if auth.uid() is null then
    raise exception 'my_service_history: for a signed-in user' using errcode = '42501';
  end if;
  if p_limit is null or p_limit not between 1 and 1000 then
    raise exception 'my_service_history: p_limit is 1 to 1000' using errcode = '22023';
  end if;
  return query select * from private.crm_service_history(private.linked_people(auth.uid()), p_limit, p_before);
end
$fn$;
comment on function private.my_service_history is 'Definer twin of my_service_history.';
{{ m.private_grants('my_service_history') }}
{{ m.api_function('my_service_history', 'p_limit integer default 100, p_before timestamptz default null',
   'table (organization_id uuid, organization_name text, org_client_id uuid, id uuid, type text, created_at timestamptz, data jsonb)',
   'p_limit, p_before',
   'The client portal: your jobs, issued invoices and payments from every provider that has you as a client through an email or phone you confirmed, newest first; page with p_before. Never a provider\'s notes, custom fields or tags. Signed-in users only (42501); p_limit 1..1000 (22023).', stable=true) }}
