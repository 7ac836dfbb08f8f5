-- client_services (issue 9, seed 000): seed 000's onboarding guide runs
-- unchanged against the real domains. Five security_invoker views — one
-- source of truth, no copy of any data — and INSTEAD OF triggers that
-- write through the functions and row-level security every other client
-- goes through, so a write the real tables or functions refuse is refused
-- here the same way:
--   organizations   -> tenancy.organizations (+ the live subscription's plan)
--   accounts        -> tenancy.memberships (+ the role's permissions)
--   usage_logs      -> usage.events (write: record_usage)
--   billing_records -> billing.one_off_payments (write: record_one_off_payment)
--   transactions    -> billing.credit_ledger + billing.one_off_payments (read-only)
-- Grants mirror the real tables': what a client may not write there it may
-- not write here (anon: nothing at all). README: "client_services".
{% import 'sql/macros.sql' as m with context %}
{#- The guide's short role names and our tenant roles: one list for the
    view (key -> name) and the trigger (name -> key). Seed 001's 'viewer'
    is accepted on write as well. -#}
{% set role_names = [('tenant_owner', 'owner'), ('tenant_admin', 'admin'), ('tenant_member', 'member'), ('tenant_guest', 'guest')] %}

-- The schema's description, as a user of the package reads it (the
-- migration's said where it came from; that mapping is in the docs'
-- design appendix).
comment on schema client_services is 'tenantdb client_services: the compatibility schema of the onboarding guide''s organizations, accounts, usage_logs, billing_records and transactions, as security_invoker views over tenancy, iam, usage and billing (one source of truth, no data of its own).';

-- private.currency_exponent(currency char(3)) -> integer
-- Returns the ISO 4217 minor-unit exponent of an active currency code
-- (case-insensitive): 0 for JPY, KRW, ...; 3 for BHD, IQD, JOD, KWD, LYD,
-- OMR, TND; 4 for CLF, UYW; 2 for the others ISO 4217 lists; null for a
-- code it does not list with minor units (unknown codes, funds and metals
-- such as XAU, withdrawn currencies). The one place that knows how many
-- minor units make a major one: the client_services views divide by it,
-- the billing_records trigger multiplies by it and refuses a null (22023).
-- Refuses nothing. Callable by authenticated and service_role (the views
-- call it with the caller's rights).
create or replace function private.currency_exponent(currency char(3))
  returns integer
  language sql
  immutable
  parallel safe
  {{ m.pinned() }}
as $fn$
select case
         when upper(currency) = any ('{BIF,CLP,DJF,GNF,ISK,JPY,KMF,KRW,PYG,RWF,UGX,UYI,VND,VUV,XAF,XOF,XPF}'::text[]) then 0
         when upper(currency) = any ('{BHD,IQD,JOD,KWD,LYD,OMR,TND}'::text[]) then 3
         when upper(currency) = any ('{CLF,UYW}'::text[]) then 4
         when upper(currency) = any ('{AED,AFN,ALL,AMD,ANG,AOA,ARS,AUD,AWG,AZN,BAM,BBD,BDT,BGN,BMD,BND,BOB,BOV,BRL,BSD,BTN,BWP,BYN,BZD,'
                                     'CAD,CDF,CHE,CHF,CHW,CNY,COP,COU,CRC,CUP,CVE,CZK,DKK,DOP,DZD,EGP,ERN,ETB,EUR,FJD,FKP,GBP,GEL,GHS,'
                                     'GIP,GMD,GTQ,GYD,HKD,HNL,HTG,HUF,IDR,ILS,INR,IRR,JMD,KES,KGS,KHR,KPW,KYD,KZT,LAK,LBP,LKR,LRD,LSL,'
                                     'MAD,MDL,MGA,MKD,MMK,MNT,MOP,MRU,MUR,MVR,MWK,MXN,MXV,MYR,MZN,NAD,NGN,NIO,NOK,NPR,NZD,PAB,PEN,PGK,'
                                     'PHP,PKR,PLN,QAR,RON,RSD,RUB,SAR,SBD,SCR,SDG,SEK,SGD,SHP,SLE,SOS,SRD,SSP,STN,SVC,SYP,SZL,THB,TJS,'
                                     'TMT,TOP,TRY,TTD,TWD,TZS,UAH,USD,USN,UYU,UZS,VED,VES,WST,XCD,XCG,YER,ZAR,ZMW,ZWG}'::text[]) then 2
       end
$fn$;
comment on function private.currency_exponent is 'The ISO 4217 minor-unit exponent of a currency code (USD 2, JPY 0, KWD 3, CLF 4), null for a code without one: major = minor / 10^exponent.';
{{ m.private_grants('currency_exponent') }}

-- private.client_services_account_id(organization_id uuid, user_id uuid) -> uuid
-- Returns the id client_services.accounts shows for a membership, whose
-- real key is the pair (organization_id, user_id): a name-based UUID
-- (RFC 4122 version 3, MD5) of "<organization_id>/<user_id>" in the
-- namespace f6586f1b-7571-4e33-8c90-c3e466d51b39 — the same membership
-- always has the same id, and an application computes it with e.g.
-- Python's uuid.uuid3(namespace, f"{org}/{user}"). Refuses nothing.
-- Callable by authenticated and service_role (the accounts view calls it).
create or replace function private.client_services_account_id(organization_id uuid, user_id uuid)
  returns uuid
  language sql
  immutable
  parallel safe
  {{ m.pinned() }}
as $fn$
select (substr(h, 1, 12) || '3' || substr(h, 14, 3)
        || substr('89ab', (('x' || substr(h, 17, 1))::bit(4)::integer & 3) + 1, 1) || substr(h, 18))::uuid
  from (select md5(decode('f6586f1b75714e338c90c3e466d51b39', 'hex')
                   || convert_to(organization_id::text || '/' || user_id::text, 'UTF8')) as h) hashed
$fn$;
comment on function private.client_services_account_id is 'The stable id of a membership in client_services.accounts: uuid v3 of "<organization_id>/<user_id>" in namespace f6586f1b-7571-4e33-8c90-c3e466d51b39.';
{{ m.private_grants('client_services_account_id') }}

-- The views ------------------------------------------------------------------

create or replace view client_services.organizations
  with (security_invoker = true) as
select o.id, o.name, o.slug,
       (select s.plan_key from billing.subscriptions s
         where s.organization_id = o.id and s.status <> 'canceled') as plan_type,
       o.status, o.metadata, o.created_at, o.updated_at
  from tenancy.organizations o;
comment on view client_services.organizations is 'Organizations with their plan: tenancy.organizations with plan_type = the live subscription''s plan (null without billing.view). Rows: the caller''s organizations (tenant.read). Insert: any signed-in user (becomes owner; another plan than free needs the back end); update name and slug: tenant.update; the rest: service role.';
comment on column client_services.organizations.plan_type is 'The plan key of the live (not canceled) subscription; null when the caller lacks billing.view. Written through change_subscription_plan (service role, platform.billing.adjust).';
comment on column client_services.organizations.status is 'tenancy.organizations.status: active, suspended (read-only for members) or deleted.';
comment on column client_services.organizations.metadata is 'tenancy.organizations.metadata: the application''s free-form JSON object.';
revoke all on client_services.organizations from public, anon, authenticated, service_role;
grant select, insert (name, slug, plan_type, status, metadata) on client_services.organizations to authenticated, service_role;
grant update (name, slug) on client_services.organizations to authenticated;
grant update (name, slug, plan_type, status, metadata), delete on client_services.organizations to service_role;

create or replace view client_services.accounts
  with (security_invoker = true) as
select private.client_services_account_id(ms.organization_id, ms.user_id) as id, ms.user_id, ms.organization_id,
       case ms.role_key {% for key, name in role_names %}when '{{ key }}' then '{{ name }}' {% endfor %}else ms.role_key end as role,
       array(select rp.permission_key from iam.role_permissions rp
              where rp.role_key = ms.role_key order by rp.permission_key) as permissions,
       ms.status, ms.created_at
  from tenancy.memberships ms;
comment on view client_services.accounts is 'Memberships as accounts: tenancy.memberships, the role by its short name (owner, admin, member, guest) and its permissions (read-only). Rows: members of the caller''s organizations (tenant.read). Insert, update, delete: the service role; members join through invite_member / accept_invitation.';
comment on column client_services.accounts.id is 'Derived, stable: private.client_services_account_id(organization_id, user_id); a membership''s real key is (organization_id, user_id).';
comment on column client_services.accounts.permissions is 'The role''s permission keys (iam.role_permissions), read-only.';
comment on column client_services.accounts.role is 'The tenant role by its short name: owner, admin, member or guest (tenant_owner, ...); viewer is accepted on write as guest.';
comment on column client_services.accounts.status is 'tenancy.memberships.status: active, or suspended (no permissions).';
revoke all on client_services.accounts from public, anon, authenticated, service_role;
grant select, insert (user_id, organization_id, role, permissions, status) on client_services.accounts to authenticated, service_role;
grant update (role, permissions, status), delete on client_services.accounts to service_role;

create or replace view client_services.usage_logs
  with (security_invoker = true) as
select e.id, e.organization_id, e.meter_key as service_name, e.metadata ->> 'usage_type' as usage_type, e.quantity,
       e.metadata - 'usage_type' as metadata, e.occurred_at as created_at
  from usage.events e;
comment on view client_services.usage_logs is 'Usage events as a log: usage.events (service_name = the meter, created_at = when it occurred, usage_type kept in the event''s metadata). Rows: the caller''s organizations (tenant.read). Insert: record_usage (usage.record, or the service role); append-only.';
comment on column client_services.usage_logs.service_name is 'The meter (usage.events.meter_key); on write, a meter key, alias or feature key.';
comment on column client_services.usage_logs.usage_type is 'The event metadata''s usage_type, if any.';
comment on column client_services.usage_logs.metadata is 'The event''s metadata (a JSON object) without usage_type.';
comment on column client_services.usage_logs.created_at is 'When the usage occurred (usage.events.occurred_at).';
revoke all on client_services.usage_logs from public, anon, authenticated, service_role;
grant select, insert (organization_id, service_name, usage_type, quantity, metadata, created_at) on client_services.usage_logs to authenticated, service_role;

create or replace view client_services.billing_records
  with (security_invoker = true) as
select p.id, p.organization_id,
       round(p.amount_minor / 10::numeric ^ private.currency_exponent(p.currency), private.currency_exponent(p.currency)) as amount,
       p.currency, p.provider as payment_method, p.status, p.metadata, p.created_at, p.amount_minor
  from billing.one_off_payments p;
comment on view client_services.billing_records is 'One-off payments as billing records: billing.one_off_payments, amount in major units of the currency (amount_minor as stored). Rows: the caller''s organizations (billing.view). Insert: record_one_off_payment (service role or platform.billing.adjust).';
comment on column client_services.billing_records.amount is 'amount_minor / 10^(ISO 4217 exponent of currency); null for a currency without one.';
comment on column client_services.billing_records.status is 'pending, succeeded, failed or refunded; ''paid'' is accepted on write as succeeded.';
comment on column client_services.billing_records.payment_method is 'The payment provider (billing.one_off_payments.provider).';
comment on column client_services.billing_records.metadata is 'What the caller attached to the payment: a JSON object (plan, billing period, provider ids, ...).';
comment on column client_services.billing_records.amount_minor is 'The amount as stored, in minor units of currency.';
revoke all on client_services.billing_records from public, anon, authenticated, service_role;
grant select, insert (organization_id, amount, currency, payment_method, status, metadata) on client_services.billing_records to authenticated, service_role;

create or replace view client_services.transactions
  with (security_invoker = true) as
select l.id, l.organization_id, 'credit'::text as kind, l.source as type,
       round(l.amount_minor / 10::numeric ^ private.currency_exponent(l.currency), private.currency_exponent(l.currency)) as amount,
       l.currency, 'posted'::text as status, l.reason as description, l.reference as metadata, l.created_at, l.amount_minor
  from billing.credit_ledger l
union all
select p.id, p.organization_id, 'payment'::text, p.reason,
       round(p.amount_minor / 10::numeric ^ private.currency_exponent(p.currency), private.currency_exponent(p.currency)),
       p.currency, p.status, format('%s payment %s', p.provider, p.provider_payment_id), p.metadata, p.created_at, p.amount_minor
  from billing.one_off_payments p;
comment on view client_services.transactions is 'Credits and payments as one list, read-only: the credit ledger (kind credit: + granted, - spent; type = its source) and the one-off payments (kind payment; type = topup or addon) as one list, amounts in major units. A succeeded top-up appears as its payment and as the credit it posted. Rows: the caller''s organizations (billing.view). Credits are posted with post_credit, payments recorded with record_one_off_payment.';
comment on column client_services.transactions.kind is 'credit (a credit ledger entry) or payment (a one-off payment).';
comment on column client_services.transactions.type is 'For a credit, its source (topup, admin, promo, proration, invoice, refund); for a payment, its reason (topup, addon).';
comment on column client_services.transactions.amount is 'amount_minor in major units of currency (+ granted, - spent for credits); null for a currency without an exponent.';
comment on column client_services.transactions.status is 'posted for a credit; a payment''s status (pending, succeeded, failed, refunded).';
comment on column client_services.transactions.description is 'A credit''s reason, or "<provider> payment <provider_payment_id>".';
comment on column client_services.transactions.metadata is 'A credit''s reference, or the payment''s metadata (JSON objects).';
comment on column client_services.transactions.amount_minor is 'The amount as stored, in minor units of currency.';
revoke all on client_services.transactions from public, anon, authenticated, service_role;
grant select on client_services.transactions to authenticated, service_role;

-- The writes -----------------------------------------------------------------

-- private.client_services_organizations_insert() -> trigger
-- INSTEAD OF INSERT on client_services.organizations (the guide's step 1).
-- Creates the organization through private.create_organization — the
-- caller (auth.uid()) becomes its owner — writes metadata to it, and, when
-- plan_type names another plan than the one every new organization gets
-- anyway (free), moves it there through private.change_subscription_plan.
-- Returns the row as the view shows it (RETURNING id, slug works).
-- Refuses: no user — signed out, or the service role without a user's id
-- as sub in request.jwt.claims: an organization needs an owner (42501);
-- another plan than null or the one given anyway, unless the caller is
-- trusted (service_role) or holds platform.billing.adjust: plans are
-- sold, not chosen (42501); status other than active (22023); an unknown
-- or inactive plan (P0002); and what create_organization and the table
-- refuse (23505 taken slug, 23514 bad name, slug or metadata, 54000 caps).
-- Who: signed-in users, and the service role acting for a user.
-- SECURITY DEFINER because metadata is not a column clients may write on
-- tenancy.organizations: the creator gives the new organization its
-- metadata once, at creation (the guide's industry, size, country); later
-- changes are the back end's, as on the table. It writes metadata only to
-- the row it has just created for the caller; every other decision is made
-- by the functions it calls, which read the caller from the request
-- (auth.uid(), the role in force), not from current_user.
create or replace function private.client_services_organizations_insert()
  returns trigger
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  caller uuid := auth.uid();
  org uuid;
  given_plan text;
begin
  if caller is null then
    raise exception 'client_services.organizations: an organization needs an owner, and this request names no user'
      using errcode = '42501',
            hint = 'Sign in; the back end (service role) acting for a user passes the user''s id as sub in request.jwt.claims.';
  end if;
  if coalesce(new.status, 'active') <> 'active' then
    raise exception 'client_services.organizations: a new organization is active, not %', new.status
      using errcode = '22023', hint = 'Leave status out or pass ''active''; platform staff suspend an organization later.';
  end if;
  org := private.create_organization(new.name, new.slug, 'business');
  if new.metadata is not null then
    update tenancy.organizations o set metadata = new.metadata where o.id = org;
  end if;
  select s.plan_key into given_plan from billing.subscriptions s where s.organization_id = org and s.status <> 'canceled';
  if new.plan_type is not null and new.plan_type is distinct from given_plan then
    if not (private.is_trusted_caller() or private.has_system_permission('platform.billing.adjust')) then
      raise exception 'client_services.organizations: plan % is sold, not chosen: only the service role or platform staff with platform.billing.adjust may start an organization on it', new.plan_type
        using errcode = '42501',
              hint = format('Create it with plan_type null or %L, then upgrade through the payment provider.', given_plan);
    end if;
    perform private.change_subscription_plan(org, new.plan_type);
  end if;
  select o.id, o.name, o.slug, o.status, o.metadata, o.created_at, o.updated_at
    into new.id, new.name, new.slug, new.status, new.metadata, new.created_at, new.updated_at
    from tenancy.organizations o where o.id = org;
  new.plan_type := (select s.plan_key from billing.subscriptions s where s.organization_id = org and s.status <> 'canceled');
  return new;
end
$fn$;
comment on function private.client_services_organizations_insert is 'INSTEAD OF INSERT on client_services.organizations: create_organization (caller = owner), metadata, and a plan other than free only for the service role or platform.billing.adjust (42501).';
{{ m.row_trigger('client_services.organizations', 'instead_of_insert', 'instead of insert', 'private.client_services_organizations_insert') }}

-- private.client_services_organizations_change() -> trigger
-- INSTEAD OF UPDATE and DELETE on client_services.organizations, with the
-- caller's rights: name, slug, metadata and status are written to
-- tenancy.organizations in one UPDATE of just the changed columns, so its
-- column privileges (members: name and slug) and RLS (tenant.update)
-- decide — a row the caller may not update is left alone and not counted,
-- as on the table; plan_type goes to change_subscription_plan (service
-- role, platform.billing.adjust); DELETE deletes the organization (service
-- role; one with financial records is kept, 55000). Returns the row as the
-- view shows it. Refuses: changing id, created_at or updated_at (0A000);
-- plan_type set to null (22023: cancel with cancel_subscription); what the
-- table and change_subscription_plan refuse. Who: as the grants say —
-- members update name and slug, the service role the rest.
create or replace function private.client_services_organizations_change()
  returns trigger
  language plpgsql
  security invoker
  {{ m.pinned() }}
as $fn$
declare
  changed text[] := '{}';
  touched integer;
  shown client_services.organizations;
begin
  if tg_op = 'DELETE' then
    delete from tenancy.organizations o where o.id = old.id;
    if not found then
      return null;
    end if;
    return old;
  end if;
  if (new.id, new.created_at, new.updated_at) is distinct from (old.id, old.created_at, old.updated_at) then
    raise exception 'client_services.organizations: id, created_at and updated_at are not written through this view'
      using errcode = '0A000';
  end if;
  if new.name is distinct from old.name then changed := array_append(changed, 'name = ($2).name'); end if;
  if new.slug is distinct from old.slug then changed := array_append(changed, 'slug = ($2).slug'); end if;
  if new.metadata is distinct from old.metadata then changed := array_append(changed, 'metadata = ($2).metadata'); end if;
  if new.status is distinct from old.status then changed := array_append(changed, 'status = ($2).status'); end if;
  if changed <> '{}' then
    execute format('update tenancy.organizations o set %s where o.id = $1', array_to_string(changed, ', ')) using old.id, new;
    get diagnostics touched = row_count;
    if touched = 0 then
      return null;
    end if;
  end if;
  if new.plan_type is distinct from old.plan_type then
    if new.plan_type is null then
      raise exception 'client_services.organizations: plan_type cannot be removed'
        using errcode = '22023', hint = 'End the subscription with cancel_subscription.';
    end if;
    perform private.change_subscription_plan(old.id, new.plan_type);
  end if;
  select v.* into shown from client_services.organizations v where v.id = old.id;
  if found then
    new := shown;
  end if;
  return new;
end
$fn$;
comment on function private.client_services_organizations_change is 'INSTEAD OF UPDATE/DELETE on client_services.organizations, with the caller''s rights: the table''s privileges and RLS decide; plan_type through change_subscription_plan.';
{{ m.row_trigger('client_services.organizations', 'instead_of_change', 'instead of update or delete', 'private.client_services_organizations_change') }}

-- private.client_services_accounts_write() -> trigger
-- INSTEAD OF INSERT, UPDATE and DELETE on client_services.accounts (the
-- guide's step 2), with the caller's rights: writes tenancy.memberships
-- directly, which only the back end may (members join through
-- invitations), so the table's privileges decide and its triggers (owner
-- kept, organization status, access) apply. role: the guide's short name
-- (owner, admin, member, guest; seed 001's viewer = guest) or a tenant
-- role key; a guest is a member_type guest. permissions is read-only: a
-- value is accepted (and ignored) only when the role grants all of it —
-- each element a permission key the role holds, or one of the guide's
-- words the role covers: read (a *.read or *.view permission), write
-- (*.create, *.update, *.write, *.manage, *.record), delete (*.delete,
-- *.remove), billing (billing.*). Returns the row as the view shows it
-- (RETURNING id works). Refuses: inserting without the table's INSERT
-- privilege — every member (42501, hint invite_member); an unknown role or
-- a permission the role does not grant (22023); changing id, user_id,
-- organization_id or created_at (0A000); what the table refuses (23505 a
-- member already, 23503 no such user or organization, 55000 a suspended
-- organization, 23514 the last owner). Who: the service role (update and
-- delete are granted to it only).
create or replace function private.client_services_accounts_write()
  returns trigger
  language plpgsql
  security invoker
  {{ m.pinned() }}
as $fn$
declare
  new_role text;
  word text;
  shown client_services.accounts;
begin
  if tg_op = 'DELETE' then
    delete from tenancy.memberships ms where ms.organization_id = old.organization_id and ms.user_id = old.user_id;
    if not found then
      return null;
    end if;
    return old;
  end if;
  if tg_op = 'INSERT' and not has_table_privilege('tenancy.memberships', 'insert') then
    raise exception 'client_services.accounts: members join an organization through an invitation'
      using errcode = '42501',
            hint = 'invite_member(organization_id, email, role_key), then the user calls accept_invitation(token); the back end (service role) may add a membership here.';
  end if;
  if tg_op = 'UPDATE' and (new.id, new.user_id, new.organization_id, new.created_at)
                          is distinct from (old.id, old.user_id, old.organization_id, old.created_at) then
    raise exception 'client_services.accounts: id, user_id, organization_id and created_at are not written through this view'
      using errcode = '0A000', hint = 'Remove the membership and add another.';
  end if;
  new_role := case lower(btrim(new.role)) {% for key, name in role_names %}when '{{ name }}' then '{{ key }}' {% endfor %}when 'viewer' then 'tenant_guest' else new.role end;
  if not exists (select from iam.roles r where r.key = new_role and not r.is_system) then
    raise exception 'client_services.accounts: unknown role %', coalesce(quote_literal(new.role), 'null')
      using errcode = '22023', hint = 'owner, admin, member or guest, or a tenant role key of iam.roles.';
  end if;
  if new.permissions is not null and (tg_op = 'INSERT' or new.permissions is distinct from old.permissions) then
    foreach word in array new.permissions loop
      if word is null or not exists (
           select from iam.role_permissions rp
            where rp.role_key = new_role
              and (rp.permission_key = word
                   or (word = 'read' and rp.permission_key ~ '\.(read|view)$')
                   or (word = 'write' and rp.permission_key ~ '\.(create|update|write|manage|record)$')
                   or (word = 'delete' and rp.permission_key ~ '\.(delete|remove)$')
                   or (word = 'billing' and rp.permission_key like 'billing.%'))) then
        raise exception 'client_services.accounts: role % does not grant %', new_role, coalesce(quote_literal(word), 'null')
          using errcode = '22023',
                hint = 'permissions is read-only: it is the role''s permission set. Leave it out, or choose a role that grants it.';
      end if;
    end loop;
  end if;
  if tg_op = 'INSERT' then
    insert into tenancy.memberships (organization_id, user_id, role_key, member_type, status)
    values (new.organization_id, new.user_id, new_role,
            case when new_role = 'tenant_guest' then 'guest' else 'member' end, coalesce(new.status, 'active'));
  else
    update tenancy.memberships ms
       set role_key = new_role,
           member_type = case when ms.role_key = new_role then ms.member_type
                              when new_role = 'tenant_guest' then 'guest' else 'member' end,
           status = coalesce(new.status, ms.status)
     where ms.organization_id = old.organization_id and ms.user_id = old.user_id;
    if not found then
      return null;
    end if;
  end if;
  select v.* into shown from client_services.accounts v where v.organization_id = new.organization_id and v.user_id = new.user_id;
  if found then
    new := shown;
  end if;
  return new;
end
$fn$;
comment on function private.client_services_accounts_write is 'INSTEAD OF INSERT/UPDATE/DELETE on client_services.accounts, with the caller''s rights: memberships written directly by the back end only (members: 42501, use invite_member); short role names; permissions read-only (22023 beyond the role).';
{{ m.row_trigger('client_services.accounts', 'instead_of_write', 'instead of insert or update or delete', 'private.client_services_accounts_write') }}

-- private.client_services_usage_logs_insert() -> trigger
-- INSTEAD OF INSERT on client_services.usage_logs (the guide's step 3),
-- with the caller's rights: one private.record_usage(organization_id,
-- service_name, quantity, key, created_at or now, metadata) per row, which
-- resolves service_name (a meter key, or an alias or feature key it
-- knows) and decides who may. The idempotency key is
-- metadata.idempotency_key when given (a replay writes nothing and returns
-- the first event), else a new uuid; usage_type is kept in the event's
-- metadata. Returns the event as the view shows it. Refuses what
-- record_usage refuses: not a member with usage.record and not the service
-- role (42501); unknown meter, bad quantity, time or metadata (22023).
-- Who: members with usage.record, the service role.
create or replace function private.client_services_usage_logs_insert()
  returns trigger
  language plpgsql
  security invoker
  {{ m.pinned() }}
as $fn$
declare
  meta jsonb := coalesce(new.metadata, '{}');
  event_key text := coalesce(nullif(btrim(new.metadata ->> 'idempotency_key'), ''), gen_random_uuid()::text);
  written record;
  shown client_services.usage_logs;
begin
  meta := meta - 'idempotency_key';
  if new.usage_type is not null then
    meta := meta || jsonb_build_object('usage_type', new.usage_type);
  end if;
  select * into written
    from private.record_usage(new.organization_id, new.service_name, new.quantity, event_key, coalesce(new.created_at, now()), meta);
  select v.* into shown from client_services.usage_logs v where v.organization_id = new.organization_id and v.id = written.event_id;
  if found then
    new := shown;
  else
    new.id := written.event_id;
  end if;
  return new;
end
$fn$;
comment on function private.client_services_usage_logs_insert is 'INSTEAD OF INSERT on client_services.usage_logs, with the caller''s rights: record_usage (usage.record or the service role), key from metadata.idempotency_key or a new uuid.';
{{ m.row_trigger('client_services.usage_logs', 'instead_of_insert', 'instead of insert', 'private.client_services_usage_logs_insert') }}

-- private.client_services_billing_records_insert() -> trigger
-- INSTEAD OF INSERT on client_services.billing_records (the guide's step
-- 4): one private.record_one_off_payment per row, which decides who may
-- (service role, platform.billing.adjust: payments come from the payment
-- provider), then the row's metadata merged into the payment's (later
-- keys win; a replay with the same metadata changes nothing). amount, in
-- major units, is converted to minor units by the currency's ISO 4217
-- exponent (private.currency_exponent: 99.99 USD = 9999, 100 JPY = 100,
-- 1.5 KWD = 1500); payment_method is the provider; the provider's payment
-- id is metadata.provider_payment_id or metadata.<payment_method>_payment_id
-- (the guide's stripe_payment_id); reason is metadata.reason (topup: a
-- succeeded one posts credit) or addon; status 'paid' (the guide's) is our
-- 'succeeded', null is pending. Returns the payment as the view shows it.
-- Refuses: an unknown currency or one without minor units, a missing
-- amount, an amount with more decimals than the currency's exponent
-- (99.999 USD), a missing provider payment id, metadata not an object
-- (22023); an amount beyond bigint minor units (22003); and what
-- record_one_off_payment and the table refuse (42501 not the service role
-- or platform.billing.adjust, 23514 amount not positive or unknown status
-- or reason, 22023 a payment reported before with other values). Nothing
-- is written when it refuses. Who: the service role and platform staff
-- with platform.billing.adjust.
-- SECURITY DEFINER because metadata is not a column clients (staff's
-- authenticated token included) may write on billing.one_off_payments: it
-- writes metadata only to the payment record_one_off_payment has just
-- returned, after that function's own check of the caller (which reads the
-- request's role and user, not current_user).
create or replace function private.client_services_billing_records_insert()
  returns trigger
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  meta jsonb := coalesce(new.metadata, '{}');
  exponent integer := private.currency_exponent(new.currency);
  minor numeric;
  payment_id text;
  pay_id uuid;
  shown client_services.billing_records;
  pay_status text := case lower(btrim(new.status)) when 'paid' then 'succeeded' else lower(btrim(new.status)) end;
begin
  if jsonb_typeof(meta) <> 'object' then
    raise exception 'client_services.billing_records: metadata must be a JSON object' using errcode = '22023';
  end if;
  if exponent is null then
    raise exception 'client_services.billing_records: unknown currency %', coalesce(quote_literal(new.currency), 'null')
      using errcode = '22023', hint = 'An ISO 4217 code with minor units: USD, EUR, JPY, KWD, ...';
  end if;
  if new.amount is null then
    raise exception 'client_services.billing_records: amount is required' using errcode = '22023';
  end if;
  minor := new.amount * 10::numeric ^ exponent;
  if minor <> trunc(minor) then
    raise exception 'client_services.billing_records: amount % % has more decimals than % has (ISO 4217 exponent %)',
                    new.amount, upper(new.currency), upper(new.currency), exponent
      using errcode = '22023', hint = format('%s amounts have at most %s decimal places.', upper(new.currency), exponent);
  end if;
  if abs(minor) > 9223372036854775807 then
    raise exception 'client_services.billing_records: amount % % is out of range', new.amount, upper(new.currency)
      using errcode = '22003';
  end if;
  payment_id := coalesce(meta ->> 'provider_payment_id', meta ->> (lower(new.payment_method) || '_payment_id'));
  if payment_id is null then
    raise exception 'client_services.billing_records: the payment provider''s id of the payment is required'
      using errcode = '22023',
            hint = format('Pass it in metadata as %L (or provider_payment_id): a payment is recorded once per provider id.',
                          coalesce(lower(new.payment_method), '<payment_method>') || '_payment_id');
  end if;
  pay_id := private.record_one_off_payment(new.organization_id, new.payment_method, payment_id, minor::bigint, upper(new.currency),
                                           coalesce(meta ->> 'reason', 'addon'), coalesce(pay_status, 'pending'));
  update billing.one_off_payments p set metadata = p.metadata || meta
   where p.organization_id = new.organization_id and p.id = pay_id and p.metadata is distinct from p.metadata || meta;
  select v.* into shown from client_services.billing_records v where v.organization_id = new.organization_id and v.id = pay_id;
  return shown;
end
$fn$;
comment on function private.client_services_billing_records_insert is 'INSTEAD OF INSERT on client_services.billing_records: record_one_off_payment (service role or platform.billing.adjust) with the amount in minor units by ISO 4217 exponent (22023 when it does not fit), ''paid'' = succeeded, metadata merged into the payment''s.';
{{ m.row_trigger('client_services.billing_records', 'instead_of_insert', 'instead of insert', 'private.client_services_billing_records_insert') }}

-- private.client_services_read_only() -> trigger
-- INSTEAD OF INSERT, UPDATE and DELETE on client_services.transactions:
-- refuses every write (0A000), naming where the rows come from. Clients
-- are refused before it by the privileges (42501: the view is granted
-- SELECT only); without it, a role that bypasses privileges would get
-- Postgres's advice to add an INSTEAD OF trigger. Who: nobody.
create or replace function private.client_services_read_only()
  returns trigger
  language plpgsql
  {{ m.pinned() }}
as $fn$
begin
  raise exception '%.% is read-only: % refused', tg_table_schema, tg_table_name, lower(tg_op)
    using errcode = '0A000',
          hint = 'Credits are posted with post_credit, payments recorded with record_one_off_payment (or client_services.billing_records).';
end
$fn$;
comment on function private.client_services_read_only is 'INSTEAD OF trigger on client_services.transactions: every write refused (0A000).';
{{ m.row_trigger('client_services.transactions', 'read_only', 'instead of insert or update or delete', 'private.client_services_read_only') }}
