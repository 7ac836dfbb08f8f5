-- Limits: the caps of catalog.limits, enforced by triggers for every
-- client (54000 with the limit's key and value); the back end (a trusted
-- caller) is not capped.
{% import 'sql/macros.sql' as m with context %}

-- private.require_under_limit(limit_key text, subject uuid, used bigint) -> void
-- Refuses (54000) when used has reached the limit's value; nothing for a
-- trusted caller. Unknown limit key: P0002 (a packaging error, not a
-- client's). Internal: the cap triggers call it after taking the
-- subject's lock and counting.
create or replace function private.require_under_limit(limit_key text, subject uuid, used bigint)
  returns void
  language plpgsql
  stable
  {{ m.definer() }}
as $fn$
declare
  cap bigint;
begin
  select l.value into cap from catalog.limits l where l.key = require_under_limit.limit_key;
  if not found then
    raise exception 'no limit named %', limit_key using errcode = 'P0002';
  end if;
  if used >= cap then
    raise exception 'limit % reached for %: % of %', limit_key, subject, used, cap
      using errcode = '54000',
            hint = format('The limit is catalog.limits.%s; the service role can raise it.', limit_key);
  end if;
end
$fn$;
comment on function private.require_under_limit is 'Internal: raises 54000 when a count has reached a catalog.limits value.';
revoke all on function private.require_under_limit from public, anon, authenticated;

-- private.enforce_limits() -> trigger
-- BEFORE INSERT row trigger on the capped tables (the trigger's argument
-- says which): serializes inserts of one subject with a transaction lock,
-- counts, and refuses (54000) past the limit:
--   organizations   business organizations the creating user owns, in
--                   all and in the last 24 hours
--   invitations     pending invitations of the organization
--   consents        consent records of the user in the last 24 hours
--   subject_requests  requests of the user in the last 24 hours
create or replace function private.enforce_limits()
  returns trigger
  language plpgsql
  {{ m.definer() }}
as $fn$
declare
  subject uuid;
begin
  if private.is_trusted_caller() then
    return new;
  end if;
  -- (one statement per table: a record's fields are looked up when used)
  if tg_argv[0] = 'organizations' then
    if new.is_personal then
      return new;
    end if;
    subject := auth.uid();
  elsif tg_argv[0] = 'invitations' then
    subject := new.organization_id;
  else
    subject := new.user_id;
  end if;
  if subject is null then
    return new;
  end if;
  perform pg_advisory_xact_lock(hashtextextended('tenantdb.limits.' || tg_argv[0] || subject::text, 0));
  case tg_argv[0]
    when 'organizations' then
      perform private.require_under_limit('organizations.per_user', subject,
        (select count(*) from tenancy.memberships ms join tenancy.organizations o on o.id = ms.organization_id
          where ms.user_id = subject and ms.role_key = 'tenant_owner' and not o.is_personal));
      perform private.require_under_limit('organizations.per_user_per_day', subject,
        (select count(*) from tenancy.memberships ms join tenancy.organizations o on o.id = ms.organization_id
          where ms.user_id = subject and ms.role_key = 'tenant_owner' and not o.is_personal
            and o.created_at > now() - interval '1 day'));
    when 'invitations' then
      perform private.require_under_limit('invitations.pending_per_organization', subject,
        (select count(*) from tenancy.invitations i
          where i.organization_id = subject and i.accepted_at is null and i.revoked_at is null and i.expires_at > now()));
    when 'consents' then
      perform private.require_under_limit('consents.per_user_per_day', subject,
        (select count(*) from privacy.consents c where c.user_id = subject and c.occurred_at > now() - interval '1 day'));
    when 'subject_requests' then
      perform private.require_under_limit('subject_requests.per_user_per_day', subject,
        (select count(*) from privacy.subject_requests r where r.user_id = subject and r.received_at > now() - interval '1 day'));
  end case;
  return new;
end
$fn$;
comment on function private.enforce_limits is 'Trigger: the caps of catalog.limits on organizations, invitations, consents and subject requests (54000).';
revoke all on function private.enforce_limits from public, anon, authenticated;
{% for table, kind in [('tenancy.organizations', 'organizations'), ('tenancy.invitations', 'invitations'),
                       ('privacy.consents', 'consents'), ('privacy.subject_requests', 'subject_requests')] %}
drop trigger if exists enforce_limits on {{ table }};
create trigger enforce_limits
  before insert on {{ table }}
  for each row execute function private.enforce_limits('{{ kind }}');
{% endfor %}

{{ m.audited('catalog.limits', 'catalog.limit') }}
{{ m.updated_at('catalog.limits') }}
