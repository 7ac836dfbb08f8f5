"""Reads on a hot standby (a read replica: `pg_basebackup -R`, as Supabase's
read replicas and PostgREST's read routing use them).

The test's database is filled on the primary through the API (an
organization with its members, usage, billing, CRM clients with jobs,
notes and invoices, consents); once the standby has replayed it, every
read a member makes through PostgREST's role switch — each list page (a
select from every table and view the member's role may read), each
read-only API function (the API schema's STABLE functions, from the
catalog) and the pre-request scope_request — runs on the standby and
answers exactly what the same call answers on the primary. Every other
API function (VOLATILE: it writes) is called on the standby with
arguments that work on the primary, and refuses there with SQLSTATE 25006
(read-only transaction). docs/operations.md quotes both lists.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import sql

from conftest import ROOT

READ_ONLY = "25006"  # read_only_sql_transaction


# -- the world, written on the primary ----------------------------------------------

@contextmanager
def request(conn: psycopg.Connection, claims: dict | None, role: str = "authenticated", scoped: bool = False) -> Iterator[psycopg.Connection]:
    """One PostgREST request: a transaction with the JWT claims and the role
    switch (and, scoped, the pre-request scope_request PostgREST runs)."""
    with conn.transaction():
        conn.execute("select set_config('request.jwt.claims', %s, true), set_config('role', %s, true)",
                     (json.dumps(claims or {}), role))
        if scoped:
            conn.execute("select public.scope_request()")
        yield conn


def user_claims(uid: str, **extra: str) -> dict:
    return {"sub": uid, "role": "authenticated", **extra}


SERVICE = {"role": "service_role"}


def build_world(conn: psycopg.Connection) -> dict[str, str]:
    """On the primary: organization Standby Co (Alice owns it, Mia is a
    member, Nora is invited), its plan, usage, credits, invoices and
    platform revenue, a project; CRM client Carl (who verified his email:
    the client portal) with two jobs, a note, an issued invoice with a
    payment, a reminder and a campaign; Alice's consents and access
    request; Sam, platform staff, impersonating Alice and with an open
    incident; a payment event, a reminder and a campaign send leased to
    worker w1. Returns the ids."""
    def user(email: str, phone: str | None = None) -> str:
        return str(conn.execute("insert into auth.users (email, email_confirmed_at, phone, phone_confirmed_at) "
                                "values (%s, now(), %s, case when %s::text is not null then now() end) returning id",
                                (email, phone, phone)).fetchone()[0])

    def one(claims: dict, query: str, params: dict | tuple = (), role: str = "authenticated") -> object:
        with request(conn, claims, role):
            return conn.execute(query, params).fetchone()[0]

    def service(query: str, params: dict | tuple = ()) -> object:
        return one(SERVICE, query, params, role="service_role")

    ids = {"alice": user("alice@standby.test"), "mia": user("mia@standby.test"), "nora": user("nora@standby.test"),
           "sam": user("sam@platform.test"), "zoe": user("zoe@standby.test")}
    alice = user_claims(ids["alice"])
    org = ids["org"] = str(one(alice, "select public.create_organization('Standby Co', 'standby-co')"))
    # A plan with seats for its members (the free plan has one: its owner's).
    service("select public.change_subscription_plan(%s, 'pro')", (org,))
    conn.execute("insert into tenancy.memberships (organization_id, user_id, role_key) values (%s, %s, 'tenant_member'), "
                 "(%s, %s, 'tenant_member')", (org, ids["mia"], org, ids["zoe"]))
    ids["token"] = one(alice, "select token from public.invite_member(%s, 'nora@standby.test')", (org,))
    ids["invitation"] = str(one(alice, "select invitation_id from public.invite_member(%s, 'olga@standby.test')", (org,)))
    conn.execute("insert into iam.system_role_grants (user_id, role_key, reason) values (%s, 'platform_superadmin', 'fixture'), "
                 "(%s, 'platform_break_glass', 'fixture')", (ids["sam"], ids["sam"]))
    sam = user_claims(ids["sam"])
    # Billing (on the pro plan, above): a top-up, credit, a connected account and its revenue.
    service("select public.record_one_off_payment(%s, 'stripe', 'pi_standby', 5000, 'USD', 'topup', 'succeeded')", (org,))
    service("select entry_id from public.post_credit(%s, 700, 'USD', 'promo', 'standby-credit', 'welcome')", (org,))
    conn.execute("insert into billing.connected_accounts (organization_id, provider, provider_account_id, application_fee_bps, status) "
                 "values (%s, 'stripe', 'acct_standby', 250, 'active')", (org,))
    service("select public.track_platform_revenue(%s, 'stripe', 'ch_standby', 10000, 'USD')", (org,))
    # Usage: events of a member, a project (the counting meter), rollups, a snapshot, an invoice.
    one(alice, "select event_id from public.record_usage(%s, 'api_call', 42, 'standby-1')", (org,))
    one(user_claims(ids["mia"]), "select event_id from public.record_usage(%s, 'api_call', 8, 'standby-2')", (org,))
    one(alice, "insert into app.projects (organization_id, title) values (%s, 'Replica') returning id", (org,))
    service("select public.aggregate_usage('daily', now() - interval '1 day', now() + interval '1 day')")
    service("select public.record_organization_usage(%s)", (org,))
    ids["period_start"] = str(conn.execute("select start_date from private.billing_period(%s, now())", (org,)).fetchone()[0])
    ids["billing_invoice"] = str(service("select public.generate_invoice(%s, %s)", (org, ids["period_start"])))
    # Privacy: Alice's consent and access request.
    one(alice, "select public.give_consent('marketing', 'v1')")
    ids["subject_request"] = str(one(alice, "select public.submit_subject_request('access')"))
    # CRM: Carl, booked twice (a service the second time), a note, an issued invoice with a payment.
    job = one(alice, "select public.create_job_with_optional_new_client(p_organization_id => %s, p_client => %s, "
                     "p_start_at => now() + interval '3 days', p_price_cents => 12000, p_notes => 'gate code 4411')",
              (org, json.dumps({"first_name": "Carl", "last_name": "Client", "email": "carl@client.test", "phone": "+15550001111",
                                "address": {"address1": "1 Elm St", "city": "Springfield"}})))["job"]
    client = ids["client"] = str(job["org_client_id"])
    ids["person"] = str(conn.execute("select person_id from crm.org_clients where id = %s", (client,)).fetchone()[0])
    with request(conn, alice):
        ids["service"] = str(conn.execute("insert into crm.services (organization_id, name, default_price_cents) "
                                          "values (%s, 'Lawn mowing', 5000) returning id", (org,)).fetchone()[0])
        conn.execute("select public.create_job_with_optional_new_client(%s, %s, null, %s, now() + interval '1 day')",
                     (org, client, ids["service"]))
        conn.execute("update crm.org_clients set notes = '[\"prefers mornings\"]', tags = '{vip}' where id = %s", (client,))
        invoice = conn.execute("insert into crm.invoices (organization_id, org_client_id, currency, due_date, notes) "
                               "values (%s, %s, 'USD', current_date + 10, 'net 10') returning id", (org, client)).fetchone()[0]
        conn.execute("insert into crm.invoice_lines (organization_id, invoice_id, description, unit_price_cents) "
                     "values (%s, %s, 'Mowing', 5000)", (org, invoice))
        conn.execute("update crm.invoices set status = 'open' where id = %s", (invoice,))
        conn.execute("insert into crm.payments (organization_id, invoice_id, currency, amount_cents, status) "
                     "values (%s, %s, 'USD', 2000, 'succeeded')", (org, invoice))
        ids["campaign"] = str(conn.execute("insert into crm.campaigns (organization_id, channel, name, segment) "
                                           "values (%s, 'email', 'Spring', '{\"status\": [\"active\"]}') returning id", (org,)).fetchone()[0])
        ids["campaign_2"] = str(conn.execute("insert into crm.campaigns (organization_id, channel, name, segment) "
                                             "values (%s, 'email', 'Summer', '{\"status\": [\"active\"]}') returning id", (org,)).fetchone()[0])
    # Carl signs up with the email he verified: his portal shows Standby Co's jobs.
    ids["carl"] = user("carl@client.test", "+15550001111")
    one(user_claims(ids["carl"]), "select public.set_marketing_consent(%s, 'email', true)", (ids["person"],))
    # Workers' leases: a campaign send, a reminder, a payment event (all leased to w1).
    service("select public.queue_campaign_sends(%s)", (ids["campaign"],))
    ids["send"] = str(service("select send_id from public.claim_campaign_sends('w1')"))
    service("select public.schedule_reminders(now() - interval '1 hour')")
    ids["reminder"] = str(service("select reminder_id from public.claim_reminders('w1')"))
    service("select event_id from public.ingest_payment_event('stripe', 'evt_standby', 'payment.succeeded', %s, now())",
            (json.dumps({"organization_id": org, "provider_payment_id": "pi_evt", "amount_minor": 700, "currency": "USD",
                         "reason": "addon"}),))
    ids["payment_event"] = str(service("select event_id from public.claim_payment_events('w1')"))
    # Sam: impersonating Alice (still on), and an incident.
    ids["impersonation"] = str(one(sam, "select public.start_impersonation(%s, 'support ticket 1', 30)", (ids["alice"],)))
    ids["incident"] = str(one(sam, "select public.open_incident('Replica lag', 'low')"))
    ids["mia_personal"] = str(conn.execute("select id from tenancy.organizations where personal_owner_id = %s", (ids["mia"],)).fetchone()[0])
    ids["plan_pro"] = str(conn.execute("select id from catalog.plans where key = 'pro'").fetchone()[0])
    ids["plan_business"] = str(conn.execute("select id from catalog.plans where key = 'business'").fetchone()[0])
    return ids


# -- who reads, and what -----------------------------------------------------------

# The callers of the read path, as PostgREST switches to them: a member who
# owns the organization, the same member in a request scoped to it (token
# claim organization_id: scope_request switches to organization_scoped) and
# impersonated by platform staff (claim impersonation_session), a plain
# member, the client on the portal, platform staff, the pricing page (anon)
# and the back end (service_role).
ACTORS = ("alice", "alice_scoped", "alice_impersonated", "mia", "carl", "sam_staff", "anon", "service")


def actor_request(conn: psycopg.Connection, actor: str, ids: dict[str, str]):
    """The request context of an actor (see ACTORS; also any user of ids by name)."""
    if actor == "alice_scoped":
        return request(conn, user_claims(ids["alice"], organization_id=ids["org"]), scoped=True)
    if actor == "alice_impersonated":
        return request(conn, user_claims(ids["alice"], impersonation_session=ids["impersonation"]), scoped=True)
    if actor == "sam_staff":
        return request(conn, {"sub": ids["sam"], "role": "platform_staff"}, role="platform_staff", scoped=True)
    if actor == "anon":
        return request(conn, {"role": "anon"}, role="anon", scoped=True)
    if actor == "service":
        return request(conn, SERVICE, role="service_role", scoped=True)
    return request(conn, user_claims(ids[actor]), scoped=True)


def actor_user(actor: str, ids: dict[str, str]) -> str:
    return ids.get(actor.split("_")[0], ids["alice"])


LIST_PAGES = """
select c.oid::regclass::text, r.role
  from pg_class c
  join pg_namespace n on n.oid = c.relnamespace
 cross join (values ('authenticated'), ('organization_scoped'), ('platform_staff'), ('anon'), ('service_role')) as r (role)
 where c.relkind in ('r', 'p', 'v', 'm') and not c.relispartition
   and (n.nspname = 'public' or (obj_description(n.oid, 'pg_namespace') like 'tenantdb %'
                                 and n.nspname not in ('tenantdb', 'private')))
   and not exists (select from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e')
   and exists (select from pg_roles x where x.rolname = r.role)
   and has_schema_privilege(r.role, n.oid, 'usage') and has_table_privilege(r.role, c.oid, 'select')
 order by 1
"""

API_FUNCTIONS = """
select p.proname, p.provolatile, coalesce(p.proargnames[1:p.pronargs], '{}'), p.pronargs - p.pronargdefaults
  from pg_proc p
 where p.pronamespace = 'public'::regnamespace and p.prokind = 'f'
   and not exists (select from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')
 order by 1
"""

ACTOR_ROLE = {"alice_scoped": "organization_scoped", "sam_staff": "platform_staff", "anon": "anon", "service": "service_role"}


def read_arguments(conn: psycopg.Connection, ids: dict[str, str], actor: str) -> dict[str, list]:
    """The values a read-only API function's parameters take, by name
    (parameters with a default and no entry here keep the default)."""
    features = [r[0] for r in conn.execute("select key from catalog.features order by key").fetchall()]
    return {
        "p_organization_id": [ids["org"]], "p_org_id": [ids["org"]], "p_user_id": [actor_user(actor, ids)],
        "p_org_client_id": [ids["client"]], "p_person_id": [ids["person"]],
        "p_feature_key": features, "p_currency": ["USD"], "p_amount_minor": [10000],
        # search_clients: each shape of query (a whole email, @domain, a whole
        # phone, a fragment, a prefix, a misspelt name).
        "p_query": ["carl@client.test", "@client.test", "+1 555 000 1111", "0001", "ca", "clinet"],
        "p_permission": ["crm.read", "billing.view", "platform.tenant.read"],
        "p_username": ["alice", "somebody_new"],
    }


def outcome(conn: psycopg.Connection, query: sql.Composable, params: dict | None = None) -> str:
    """The answer of one statement, as text, or the SQLSTATE it failed with
    (in a savepoint: the request goes on)."""
    try:
        with conn.transaction():
            row = conn.execute(query, params).fetchone()
            return json.dumps(row[0], sort_keys=True)
    except psycopg.Error as exc:
        return f"SQLSTATE {exc.sqlstate}: {exc.diag.message_primary}"


def function_calls(conn: psycopg.Connection, ids: dict[str, str], actor: str) -> list[tuple[str, sql.Composable, dict]]:
    """Every call of a read-only (STABLE or IMMUTABLE) API function an actor
    makes: a call per combination of the values of its named parameters."""
    args = read_arguments(conn, ids, actor)
    calls = []
    for name, volatility, argnames, required in conn.execute(API_FUNCTIONS).fetchall():
        if volatility == "v":
            continue
        named = [a for a in argnames if a in args]
        missing = [a for a in argnames[:required] if a not in args]
        assert not missing, f"read_arguments has no value for {name}'s {missing}: add one"
        combos: list[dict] = [{}]
        for a in named:
            combos = [{**c, a: v} for c in combos for v in args[a]]
        for combo in combos:
            call = sql.SQL("select coalesce(jsonb_agg(to_jsonb(r) order by r.ordinality), '[]') from {}({}) with ordinality as r").format(
                sql.Identifier("public", name),
                sql.SQL(", ").join(sql.SQL("{} => {}").format(sql.Identifier(a), sql.Placeholder(a)) for a in combo))
            shown = f"{name}({', '.join(f'{a} => {v}' for a, v in combo.items())})"
            calls.append((shown, call, combo))
    return calls


def page_query(relation: str) -> sql.Composable:
    """A list page: all the rows of the relation the caller may see, as a count and an md5."""
    return sql.SQL("select jsonb_build_array(count(*), md5(coalesce(string_agg(t, E'\\n' order by t), ''))) "
                   "from (select to_jsonb(x)::text as t from {} x) s").format(sql.SQL(relation))


def reads(conninfo: str, ids: dict[str, str], actors: tuple[str, ...] = ACTORS) -> dict[str, str]:
    """Every read of every actor on one server: each list page and each
    read-only API function call, keyed by actor and read. The pages of an
    actor are one statement (one at a time only if that one fails)."""
    seen: dict[str, str] = {}
    with psycopg.connect(conninfo, autocommit=True) as conn:
        pages = conn.execute(LIST_PAGES).fetchall()
        for actor in actors:
            role = ACTOR_ROLE.get(actor, "authenticated")
            mine = [relation for relation, page_role in pages if page_role == role]
            calls = function_calls(conn, ids, actor)
            with actor_request(conn, actor, ids):
                together = sql.SQL("select jsonb_object_agg(r, a) from ({}) s").format(sql.SQL(" union all ").join(
                    sql.SQL("select {} as r, ({}) as a").format(sql.Literal(relation), page_query(relation)) for relation in mine))
                answered = outcome(conn, together)
                if answered.startswith("SQLSTATE"):
                    for relation in mine:
                        seen[f"{actor}: select * from {relation}"] = outcome(conn, page_query(relation))
                else:
                    for relation, answer in json.loads(answered).items():
                        seen[f"{actor}: select * from {relation}"] = json.dumps(answer)
                for shown, call, params in calls:
                    seen[f"{actor}: {shown}"] = outcome(conn, call, params)
    return seen


# -- what needs the primary ----------------------------------------------------------

# Every VOLATILE API function, the caller that uses it and a call that
# works on the primary (it writes): on the standby each refuses with 25006.
# docs/operations.md quotes this list; a new VOLATILE API function fails
# test_every_api_function_is_classified until it is added here (or, if it
# only reads, declared stable=true in its api_function call).
WRITES: dict[str, tuple[str, str]] = {
    "accept_invitation": ("nora", "public.accept_invitation(%(token)s)"),
    "activate_break_glass": ("sam", "public.activate_break_glass('replica drill', 10)"),
    "add_person_address": ("carl", "public.add_person_address(%(person)s, '{\"address1\": \"9 Home Rd\"}')"),
    "advance_subject_request": ("service", "public.advance_subject_request(%(subject_request)s, 'verified')"),
    "aggregate_usage": ("service", "public.aggregate_usage('daily', now() - interval '1 day', now() + interval '1 day')"),
    "cancel_subscription": ("service", "public.cancel_subscription(%(org)s)"),
    "change_subscription_plan": ("service", "public.change_subscription_plan(%(org)s, 'business')"),
    "claim_campaign_sends": ("service", "public.claim_campaign_sends('w2')"),
    "claim_payment_events": ("service", "public.claim_payment_events('w2')"),
    "claim_reminders": ("service", "public.claim_reminders('w2')"),
    "complete_campaign_send": ("service", "public.complete_campaign_send(%(send)s, 'w1')"),
    "complete_onboarding": ("alice", "public.complete_onboarding(%(alice)s)"),
    "complete_reminder": ("service", "public.complete_reminder(%(reminder)s, 'w1')"),
    "create_job_with_optional_new_client": ("alice", "public.create_job_with_optional_new_client(%(org)s, %(client)s, "
                                                     "p_start_at => now() + interval '5 days')"),
    "create_organization": ("mia", "public.create_organization('Mia Co', 'mia-co')"),
    "end_impersonation": ("sam", "public.end_impersonation()"),
    "erase_person": ("service", "public.erase_person(%(person)s)"),
    "erase_user": ("service", "public.erase_user(%(zoe)s)"),
    "finalize_invoice": ("service", "public.finalize_invoice(%(org)s, %(billing_invoice)s)"),
    # (Standby Co's current period has its invoice: generate_invoice would
    # return it and write nothing. Mia's personal organization's has none.)
    "generate_invoice": ("service", "public.generate_invoice(%(mia_personal)s, "
                                    "(select start_date from private.billing_period(%(mia_personal)s, now())))"),
    "give_consent": ("alice", "public.give_consent('analytics', 'v1')"),
    "handle_payment_event": ("service", "public.handle_payment_event(%(payment_event)s, 'w1')"),
    "ingest_payment_event": ("service", "public.ingest_payment_event('stripe', 'evt_standby_2', 'payment.succeeded', "
                                        "jsonb_build_object('organization_id', %(org)s::text, 'provider_payment_id', 'pi_evt_2', "
                                        "'amount_minor', 100, 'currency', 'USD', 'reason', 'addon'), now())"),
    "invite_member": ("alice", "public.invite_member(%(org)s, 'pia@standby.test')"),
    "leave_organization": ("mia", "public.leave_organization(%(org)s)"),
    "open_incident": ("sam", "public.open_incident('Second incident', 'low')"),
    "post_credit": ("service", "public.post_credit(%(org)s, 100, 'USD', 'admin', 'standby-credit-2', 'goodwill')"),
    "process_payment_events": ("service", "public.process_payment_events('w2')"),
    "propagate_contact_update": ("carl", "public.propagate_contact_update(%(person)s, 'Carlos')"),
    "purge_audit": ("service", "public.purge_audit(now() - interval '3 years')"),
    "queue_campaign_sends": ("alice", "public.queue_campaign_sends(%(campaign_2)s)"),
    "record_one_off_payment": ("service", "public.record_one_off_payment(%(org)s, 'stripe', 'pi_standby_2', 1000, 'USD', 'topup', 'succeeded')"),
    "record_organization_usage": ("alice", "public.record_organization_usage(%(org)s)"),
    "record_subscription_change": ("service", "public.record_subscription_change(%(org)s, %(plan_pro)s, %(plan_business)s, 'upgrade')"),
    "record_usage": ("alice", "public.record_usage(%(org)s, 'api_call', 1, 'standby-3')"),
    "record_usage_batch": ("alice", "public.record_usage_batch(%(org)s, "
                                    "'[{\"meter_key\": \"api_call\", \"quantity\": 1, \"idempotency_key\": \"standby-4\"}]')"),
    "remove_member": ("alice", "public.remove_member(%(org)s, %(zoe)s)"),
    "register_usage_keys": ("service", "public.register_usage_keys()"),
    "renew_subscriptions": ("service", "public.renew_subscriptions(now() + interval '40 days')"),
    "revoke_invitation": ("alice", "public.revoke_invitation(%(org)s, %(invitation)s)"),
    "schedule_reminders": ("service", "public.schedule_reminders()"),
    "set_invoice_status": ("service", "public.set_invoice_status(%(org)s, %(billing_invoice)s, 'void')"),
    "set_marketing_consent": ("carl", "public.set_marketing_consent(%(person)s, 'sms', true)"),
    "start_impersonation": ("sam", "public.start_impersonation(%(mia)s, 'support ticket 2', 10)"),
    "submit_subject_request": ("alice", "public.submit_subject_request('erasure')"),
    "track_platform_revenue": ("service", "public.track_platform_revenue(%(org)s, 'stripe', 'ch_standby_2', 500, 'USD')"),
    "transfer_ownership": ("alice", "public.transfer_ownership(%(org)s, %(mia)s)"),
    "update_incident": ("sam", "public.update_incident(%(incident)s, 'investigating', 'looking into it')"),
    "upsert_person": ("alice", "public.upsert_person('new.client@client.test')"),
    "withdraw_consent": ("alice", "public.withdraw_consent('marketing', 'v1')"),
}
# VOLATILE, yet it writes nothing: PostgREST's pre-request function (it
# switches a scoped request's role); every read above runs it.
PRE_REQUEST = "scope_request"


def writer_request(conn: psycopg.Connection, actor: str, ids: dict[str, str]):
    if actor == "service":
        return request(conn, SERVICE, role="service_role")
    return request(conn, user_claims(ids[actor]))


def try_writes(conninfo: str, ids: dict[str, str]) -> dict[str, str | None]:
    """Each writer's call, each in its own request rolled back: the SQLSTATE
    it failed with, or None."""
    found: dict[str, str | None] = {}
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for name, (actor, call) in WRITES.items():
            try:
                with writer_request(conn, actor, ids):
                    conn.execute(f"select * from {call}", ids)
                    found[name] = None
                    raise psycopg.Rollback()
            except psycopg.Error as exc:
                found[name] = f"{exc.sqlstate}: {exc.diag.message_primary}"
    return found


# -- the tests ---------------------------------------------------------------------------

@pytest.fixture
def replicated(dsn: str, standby) -> tuple[dict[str, str], str]:
    """The world written on the primary and replayed on the standby: its
    ids and the standby's conninfo of the test's database."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        ids = build_world(conn)
    standby.wait_for_replay()
    return ids, standby.reroute(dsn)


def test_the_standby_is_a_hot_standby_of_the_primary(dsn: str, standby) -> None:
    """The fixture's server is a streaming standby of the primary, of the
    same version, in recovery; it replays what the primary commits
    (wait_for_replay) and refuses to write."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("create table public.standby_probe (n int)")
        conn.execute("insert into public.standby_probe values (1), (2)")
        version = conn.execute("select current_setting('server_version_num')").fetchone()[0]
        assert conn.execute("select count(*) from pg_stat_replication r join pg_replication_slots s on s.active_pid = r.pid "
                            "where s.slot_name = %s and r.state = 'streaming'", (standby.slot,)).fetchone()[0] == 1
    standby.wait_for_replay()
    with psycopg.connect(standby.reroute(dsn), autocommit=True) as conn:
        assert conn.execute("select current_setting('server_version_num')").fetchone()[0] == version
        assert conn.execute("select pg_is_in_recovery(), current_setting('transaction_read_only')").fetchone() == (True, "on")
        assert conn.execute("select sum(n) from public.standby_probe").fetchone()[0] == 3
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("insert into public.standby_probe values (3)")


def test_every_read_answers_on_the_standby_what_it_answers_on_the_primary(dsn: str, replicated) -> None:
    """Each list page and each read-only API function call of each actor,
    on the standby, as on the primary; and they read the world (not just
    "no error")."""
    ids, on_standby = replicated
    primary, standby = reads(dsn, ids), reads(on_standby, ids)
    assert sorted(standby) == sorted(primary)
    differ = [f"{key}\n  primary: {primary[key][:300]}\n  standby: {standby[key][:300]}" for key in primary if standby[key] != primary[key]]
    assert not differ, "reads that answer differently on the standby:\n" + "\n".join(differ)
    # A list page is readable by the role that has the grant (its policies decide the rows).
    failed_pages = {key: answer for key, answer in standby.items() if ": select * from " in key and answer.startswith("SQLSTATE")}
    assert not failed_pages, failed_pages
    # What the issue names, read as a member (and the client, on the portal) on the standby.
    def answer(key: str) -> object:
        assert not standby[key].startswith("SQLSTATE"), f"{key}: {standby[key]}"
        return json.loads(standby[key])

    org, client, alice = ids["org"], ids["client"], ids["alice"]
    for actor in ("alice", "alice_scoped", "alice_impersonated"):
        usage = answer(f"{actor}: check_feature_access(p_user_id => {alice}, p_feature_key => max_api_calls_per_month, p_organization_id => {org})")
        assert (usage[0]["used"], usage[0]["plan"]) == (50, "pro")
        seats = answer(f"{actor}: check_feature_access(p_user_id => {alice}, p_feature_key => max_seats, p_organization_id => {org})")
        assert seats[0]["used"] == 3
        found = answer(f"{actor}: search_clients(p_query => clinet, p_org_id => {org})")
        assert [(r["first_name"], r["org_client_id"]) for r in found] == [("Carl", client)]
        timeline = answer(f"{actor}: client_timeline(p_org_client_id => {client})")
        assert sorted(r["type"] for r in timeline) == ["invoice", "job", "job", "note", "payment"]
        assert answer(f"{actor}: client_stats(p_org_id => {org}, p_currency => USD)")[0]["total_clients"] == 1
        export = answer(f"{actor}: export_user_data(p_user_id => {alice})")[0]
        assert [c["purpose"] for c in export["privacy.consents"]] == ["marketing"]
        for page, rows in (("organization_usage_summary", 1), ("organization_feature_usage", 9), ("crm.org_clients", 1),
                           ("crm.jobs", 2), ("usage.events", 3), ("app.projects", 1), ("tenancy.invitations", 2)):
            assert answer(f"{actor}: select * from {page}")[0] == rows, page
    mia = ids["mia"]
    assert answer(f"mia: check_feature_access(p_user_id => {mia}, p_feature_key => max_api_calls_per_month, p_organization_id => {org})")[0]["used"] == 50
    assert [r["type"] for r in answer("carl: my_service_history()")].count("job") == 2
    assert answer("anon: select * from catalog.plans")[0] > 0  # the pricing page


def test_every_api_function_is_classified(dsn: str) -> None:
    """The API schema's functions: STABLE ones are the reads (called above
    on the standby), VOLATILE ones are WRITES (or the pre-request hook), and
    each wrapper is as volatile as the private twin it calls."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        functions = {name: volatility for name, volatility, _, _ in conn.execute(API_FUNCTIONS).fetchall()}
        twins = dict(conn.execute("select a.proname, p.provolatile from pg_proc a join pg_proc p on p.proname = a.proname "
                                  "and p.pronamespace = 'private'::regnamespace where a.pronamespace = 'public'::regnamespace "
                                  "and not exists (select from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = a.oid and d.deptype = 'e')").fetchall())
    volatile = sorted(n for n, v in functions.items() if v == "v")
    assert volatile == sorted([*WRITES, PRE_REQUEST]), (
        f"VOLATILE API functions not in WRITES: {sorted(set(volatile) - set(WRITES) - {PRE_REQUEST})}; "
        f"in WRITES but not VOLATILE: {sorted(set(WRITES) - set(volatile))}")
    assert len(functions) - len(volatile) >= 15, "the read-only API functions are no longer STABLE"
    unlike = sorted(n for n, v in functions.items() if n in twins and twins[n] != v)
    assert not unlike, f"API functions declared otherwise than their private twin (api_function's stable=true): {unlike}"


def test_every_writer_refuses_on_the_standby_and_writes_nothing(dsn: str, replicated, standby) -> None:
    """Each WRITES call works on the primary (rolled back there) and, on the
    standby, refuses with SQLSTATE 25006; the standby's pages are unchanged."""
    ids, on_standby = replicated
    on_primary = try_writes(dsn, ids)
    failing = {name: state for name, state in on_primary.items() if state is not None}
    assert not failing, f"WRITES calls that fail on the primary (fix the call): {failing}"
    before = reads(on_standby, ids, actors=("service",))
    refused = try_writes(on_standby, ids)
    wrong = {name: state for name, state in refused.items() if state is None or not state.startswith(READ_ONLY)}
    assert not wrong, f"writers that did not refuse with {READ_ONLY} on the standby: {wrong}"
    assert reads(on_standby, ids, actors=("service",)) == before


def test_the_docs_list_what_this_test_checks(dsn: str) -> None:
    """docs/operations.md (Read replicas): its list of read-only functions is the API
    schema's STABLE functions, its lists of functions that need the primary
    are WRITES."""
    text = (ROOT / "docs" / "operations.md").read_text()
    works = text.split("### Works on a replica", 1)[1].split("\n#", 1)[0]
    needs = text.split("### Needs the primary", 1)[1].split("\n#", 1)[0]
    listed = re.compile(r"^- `([a-z_]+)`$", re.M)
    with psycopg.connect(dsn, autocommit=True) as conn:
        stable = sorted(name for name, volatility, _, _ in conn.execute(API_FUNCTIONS).fetchall() if volatility != "v")
    assert sorted(listed.findall(works)) == stable
    assert sorted(listed.findall(needs)) == sorted(WRITES)
