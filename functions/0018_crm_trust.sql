-- crm trust: what needs change 0018's columns and tables — the
-- confirmation trigger on auth.users, the organization's own addresses,
-- and what a provider and a homeowner see of each other: client_account
-- (a provider: does my client have an account, and what do they say of
-- themselves) and my_service_history (the client portal: a linked user's
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
-- "linked_since": ..., "person": {first_name, last_name, email, phone_e164,
-- updated_at}} — the person's own record as they keep it (to compare with
-- the organization's and take over a change: "the client updated their
-- email") — or {"has_account": false, "linked_since": null, "person":
-- null}. An account is tied to the client only through an email or phone
-- of the organization's record that the person verified. Refuses: an
-- unknown client, or one of an organization where the caller lacks crm.read
-- (P0002: its existence is not disclosed).
create or replace function private.client_account(p_org_client_id uuid)
  returns jsonb
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
declare
  c record;
  linked timestamptz;
begin
  select oc.organization_id, oc.person_id into c
    from crm.org_clients oc
   where oc.id = p_org_client_id
     and (private.is_trusted_caller() or oc.organization_id = any (private.org_ids_with_permission('crm.read')))
   limit 1;
  if c.organization_id is null then
    raise exception 'client_account: no client %', p_org_client_id using errcode = 'P0002';
  end if;
  select min(l.linked_at) into linked from crm.user_person_links l where l.person_id = c.person_id;
  return jsonb_build_object('has_account', linked is not null, 'linked_since', linked,
    'person', (select jsonb_build_object('first_name', p.first_name, 'last_name', p.last_name, 'email', p.primary_email,
                                         'phone_e164', p.primary_phone_e164, 'updated_at', p.updated_at)
                 from crm.people p where p.id = c.person_id and linked is not null));
end
$fn$;
comment on function private.client_account is 'Definer twin of client_account.';
{{ m.private_grants('client_account') }}
{{ m.api_function('client_account', 'p_org_client_id uuid', 'jsonb', 'p_org_client_id',
   'Whether your client has an account (tied through an email or phone they verified) and, if so, their own record ({has_account, linked_since, person: {first_name, last_name, email, phone_e164, updated_at}}). Needs crm.read in the client\'s organization (else P0002, as for an unknown client).') }}

-- private.crm_service_history(people uuid[], p_limit integer, p_before timestamptz)
--   -> table (organization_id, organization_name, org_client_id, id, type, created_at, data)
-- What providers share with their client, for the given people: jobs
-- (status, times, price, service, where), issued invoices (status, total,
-- currency, due date, issued and paid) and payments (status, amount,
-- currency, captured), newest first, p_limit rows older than p_before.
-- Never notes, custom fields, tags, drafts or another provider's records of
-- the client. The callers check who asks. Refuses nothing.
create or replace function private.crm_service_history(people uuid[], p_limit integer, p_before timestamptz)
  returns table (organization_id uuid, organization_name text, org_client_id uuid, id uuid, type text, created_at timestamptz, data jsonb)
  language sql
  stable
  {{ m.definer() }}
as $fn$
  select e.organization_id, o.name, e.org_client_id, e.id, e.type, e.created_at, e.data
    from crm.org_clients oc
    join tenancy.organizations o on o.id = oc.organization_id
   cross join lateral (
     (select j.organization_id, j.org_client_id, j.id, 'job'::text as type, j.created_at,
             jsonb_build_object('status', j.status, 'start_at', j.start_at, 'end_at', j.end_at, 'price_cents', j.price_cents,
                                'currency', oc.currency, 'service', s.name,
                                'address', (select jsonb_build_object('address1', a.address1, 'address2', a.address2, 'city', a.city,
                                                                      'state', a.state, 'postal', a.postal, 'country', a.country)
                                              from crm.client_addresses a
                                             where a.organization_id = j.organization_id and a.org_client_id = j.org_client_id
                                               and a.id = j.address_id)) as data
        from crm.jobs j
        left join crm.services s on s.organization_id = j.organization_id and s.id = j.service_id
       where j.organization_id = oc.organization_id and j.org_client_id = oc.id and j.person_id = oc.person_id
         and j.created_at < coalesce(p_before, 'infinity')
       order by j.created_at desc limit p_limit)
     union all
     (select i.organization_id, i.org_client_id, i.id, 'invoice', i.created_at,
             jsonb_build_object('status', i.status, 'total_cents', i.total_cents, 'currency', i.currency, 'due_date', i.due_date,
                                'issued_at', i.issued_at, 'paid_at', i.paid_at)
        from crm.invoices i
       where i.organization_id = oc.organization_id and i.org_client_id = oc.id and i.currency = oc.currency and i.status <> 'draft'
         and i.created_at < coalesce(p_before, 'infinity')
       order by i.created_at desc limit p_limit)
     union all
     (select p.organization_id, i.org_client_id, p.id, 'payment', p.created_at,
             jsonb_build_object('invoice_id', p.invoice_id, 'status', p.status, 'amount_cents', p.amount_cents, 'currency', p.currency,
                                'captured_at', p.captured_at)
        from crm.invoices i
        join crm.payments p on p.organization_id = i.organization_id and p.invoice_id = i.id and p.currency = i.currency
       where i.organization_id = oc.organization_id and i.org_client_id = oc.id and i.currency = oc.currency and i.status <> 'draft'
         and p.created_at < coalesce(p_before, 'infinity')
       order by p.created_at desc limit p_limit)
   ) e
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
   'The client portal: your jobs, issued invoices and payments from every provider that has you as a client through an email or phone you confirmed, newest first; page with p_before. Never a provider\'s notes, custom fields or tags. Signed-in users only (42501); p_limit 1..1000 (22023).') }}
