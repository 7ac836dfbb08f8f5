"""Seed 000's onboarding guide (issue 9), run as written against the
client_services compatibility views, through PostgREST's role switch
(set local role + request.jwt.claims): as the back end acting for a user,
as a signed-in member, as a member of another organization and as anon.
The rows must land in the real domains (tenancy, iam, usage, billing) and
every refusal must be the real tables' and functions' own.

The guide's SQL below is copied verbatim from seeds/000 (the comment lines
above each block left out). The only edits, made at run time by fill():
  'user-uuid' -> the id of a real user (the one step 2 adds)
  'org-uuid'  -> the id of a real organization (the one step 1 made)
and, for the member's own organization only, STEP_1_FREE: step 1 with
'enterprise' replaced by 'free' (a member may not choose a paid plan).
test_the_guide_is_copied_verbatim checks the copies against the seed file
when it is at hand (../shared/seeds/, beside the checkout).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import psycopg
import pytest

from conftest import ROOT

STEP_1 = """INSERT INTO client_services.organizations (
    name,
    slug,
    plan_type,
    status,
    metadata
) VALUES (
    'Acme Corporation',
    'acme-corp',
    'enterprise',
    'active',
    jsonb_build_object(
        'industry', 'technology',
        'size', 'medium',
        'country', 'US'
    )
) RETURNING id, slug;"""

STEP_2 = """INSERT INTO client_services.accounts (
    user_id,
    organization_id,
    role,
    permissions,
    status
) VALUES (
    'user-uuid',
    'org-uuid',
    'admin',
    ARRAY['read', 'write', 'delete', 'billing'],
    'active'
) RETURNING id;"""

STEP_3 = """INSERT INTO client_services.usage_logs (
    organization_id,
    service_name,
    usage_type,
    quantity,
    metadata
) VALUES (
    'org-uuid',
    'api_calls',
    'request',
    1,
    jsonb_build_object(
        'endpoint', '/api/v1/users',
        'method', 'GET',
        'response_time_ms', 45
    )
);"""

MONTHLY_USAGE = """SELECT 
    service_name,
    SUM(quantity) as total_usage,
    COUNT(*) as request_count
FROM client_services.usage_logs
WHERE organization_id = 'org-uuid'
  AND created_at >= DATE_TRUNC('month', NOW())
GROUP BY service_name;"""

STEP_4 = """INSERT INTO client_services.billing_records (
    organization_id,
    amount,
    currency,
    payment_method,
    status,
    metadata
) VALUES (
    'org-uuid',
    99.99,
    'USD',
    'stripe',
    'paid',
    jsonb_build_object(
        'stripe_payment_id', 'pi_...',
        'plan', 'pro',
        'billing_period', '2025-11'
    )
);"""

RLS_EXAMPLE = """CREATE POLICY org_isolation 
ON client_services.organizations 
FOR SELECT 
USING (
    id IN (
        SELECT organization_id 
        FROM client_services.accounts 
        WHERE user_id = auth.uid()
    )
);"""

STEP_1_FREE = STEP_1.replace("'enterprise'", "'free'")
GUIDE_METADATA = {"industry": "technology", "size": "medium", "country": "US"}
# The namespace of client_services.accounts.id (functions/0016): uuid v3 of "<org>/<user>".
ACCOUNT_NAMESPACE = uuid.UUID("f6586f1b-7571-4e33-8c90-c3e466d51b39")
VIEWS = ("organizations", "accounts", "usage_logs", "billing_records", "transactions")
REFUSED = "42501"


def fill(sql: str, org: object = None, user: object = None) -> str:
    """The guide's placeholders replaced by real ids (nothing else changes)."""
    if user is not None:
        sql = sql.replace("'user-uuid'", f"'{user}'")
    if org is not None:
        sql = sql.replace("'org-uuid'", f"'{org}'")
    return sql


@contextmanager
def acting(conn: psycopg.Connection, role: str, sub: object = None) -> Iterator[psycopg.Connection]:
    """One request as PostgREST makes it: a transaction switched to role,
    with the JWT's claims (sub: the user's id, if any)."""
    claims = {"role": role} if sub is None else {"sub": str(sub), "role": role}
    with conn.transaction():
        conn.execute("select set_config('request.jwt.claims', %s, true), set_config('role', %s, true)",
                     (json.dumps(claims), role))
        yield conn


def run(conn: psycopg.Connection, role: str, sub: object, sql: str) -> list[tuple] | int:
    """The statement's rows, or its row count when it returns none."""
    with acting(conn, role, sub):
        cur = conn.execute(sql)
        return cur.fetchall() if cur.description else cur.rowcount


def refused(conn: psycopg.Connection, role: str, sub: object, sql: str) -> psycopg.Error:
    with pytest.raises(psycopg.Error) as info:
        run(conn, role, sub, sql)
    return info.value


def new_user(conn: psycopg.Connection, email: str) -> uuid.UUID:
    return conn.execute("insert into auth.users (email) values (%s) returning id", (email,)).fetchone()[0]


def personal_org(conn: psycopg.Connection, user: uuid.UUID) -> uuid.UUID:
    return conn.execute("select id from tenancy.organizations where personal_owner_id = %s", (user,)).fetchone()[0]


def owners(conn: psycopg.Connection, org: uuid.UUID) -> list[uuid.UUID]:
    return [r[0] for r in conn.execute("select user_id from tenancy.memberships where organization_id = %s "
                                       "and role_key = 'tenant_owner' order by user_id", (org,)).fetchall()]


def live_plan(conn: psycopg.Connection, org: uuid.UUID) -> str | None:
    row = conn.execute("select plan_key from billing.subscriptions where organization_id = %s and status <> 'canceled'",
                       (org,)).fetchone()
    return row and row[0]


def expected_meter(conn: psycopg.Connection) -> str:
    """What the guide's service_name 'api_calls' is in our catalog: the meter
    its alias names (catalog.meter_aliases, 0015)."""
    row = conn.execute("select meter_key from catalog.meter_aliases where alias = 'api_calls'").fetchone()
    assert row is not None, "the default catalog names api_calls as an alias"
    return row[0]


def month_usage(conn: psycopg.Connection, org: uuid.UUID) -> list[tuple]:
    """The monthly usage query's answer, computed from usage.events itself."""
    return conn.execute("select meter_key, sum(quantity), count(*) from usage.events where organization_id = %s "
                        "and occurred_at >= date_trunc('month', now()) group by meter_key order by 1", (org,)).fetchall()


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection]:
    """A connection as the owner (autocommit); tests switch roles per request."""
    with psycopg.connect(dsn, autocommit=True) as c:
        yield c


@pytest.fixture
def acme(conn: psycopg.Connection) -> dict[str, uuid.UUID]:
    """Step 1 run by the back end (service role) for alice."""
    alice = new_user(conn, "alice@acme.test")
    [(org, slug)] = run(conn, "service_role", alice, STEP_1)
    assert slug == "acme-corp"
    return {"alice": alice, "org": org}


# The design documents are not shipped with the package; a checkout next to
# them (../shared/seeds/) compares the copies above with the original.
DESIGN_DOCUMENTS = ROOT.parent / "shared" / "seeds"


def test_the_guide_is_copied_verbatim() -> None:
    if not DESIGN_DOCUMENTS.is_dir():
        pytest.skip(f"the design documents are not at hand ({DESIGN_DOCUMENTS}): the copies cannot be compared")
    found = sorted(DESIGN_DOCUMENTS.glob("000_*.txt"))
    assert len(found) == 1, f"{DESIGN_DOCUMENTS} holds the design documents, seed 000 among them"
    guide = found[0].read_text()
    for name, sql in (("STEP_1", STEP_1), ("STEP_2", STEP_2), ("STEP_3", STEP_3), ("MONTHLY_USAGE", MONTHLY_USAGE),
                      ("STEP_4", STEP_4), ("RLS_EXAMPLE", RLS_EXAMPLE)):
        assert sql in guide, f"{name} is not the guide's text"


# -- the back end, acting for a user (service role, the user's id as sub) ------

def test_step_1_as_the_back_end_creates_the_organization_on_enterprise(conn, acme) -> None:
    org, alice = acme["org"], acme["alice"]
    assert conn.execute("select name, slug, status, org_type, metadata from tenancy.organizations where id = %s",
                        (org,)).fetchone() == ("Acme Corporation", "acme-corp", "active", "business", GUIDE_METADATA)
    assert owners(conn, org) == [alice], "the user the back end acts for owns it"
    assert live_plan(conn, org) == "enterprise"
    assert conn.execute("select count(*) from billing.subscriptions where organization_id = %s", (org,)).fetchone()[0] == 1
    shown = run(conn, "service_role", alice, "select id, name, slug, plan_type, status, metadata "
                                             f"from client_services.organizations where id = '{org}'")
    assert shown == [(org, "Acme Corporation", "acme-corp", "enterprise", "active", GUIDE_METADATA)]


def test_step_2_as_the_back_end_adds_the_membership(conn, acme) -> None:
    org, alice = acme["org"], acme["alice"]
    bob = new_user(conn, "bob@acme.test")
    [(account_id,)] = run(conn, "service_role", alice, fill(STEP_2, org=org, user=bob))
    assert account_id == uuid.uuid3(ACCOUNT_NAMESPACE, f"{org}/{bob}"), "RETURNING id is the membership's derived id"
    assert conn.execute("select role_key, member_type, status from tenancy.memberships "
                        "where organization_id = %s and user_id = %s", (org, bob)).fetchone() == ("tenant_admin", "member", "active")
    role_permissions = [r[0] for r in conn.execute("select permission_key from iam.role_permissions "
                                                   "where role_key = 'tenant_admin' order by 1").fetchall()]
    shown = run(conn, "service_role", alice, "select id, role, permissions, status from client_services.accounts "
                                             f"where organization_id = '{org}' and user_id = '{bob}'")
    assert shown == [(account_id, "admin", role_permissions, "active")]
    # bob now reads the organization as its admin, through the real policies.
    assert run(conn, "authenticated", bob, f"select name from client_services.organizations where id = '{org}'") \
        == [("Acme Corporation",)]


def test_step_3_and_the_monthly_usage_query_as_the_back_end(conn, acme) -> None:
    org, alice = acme["org"], acme["alice"]
    meter = expected_meter(conn)
    assert run(conn, "service_role", alice, fill(STEP_3, org=org)) == 1
    events = conn.execute("select meter_key, quantity, metadata, user_id from usage.events where organization_id = %s",
                          (org,)).fetchall()
    assert events == [(meter, 1, {"endpoint": "/api/v1/users", "method": "GET", "response_time_ms": 45,
                                  "usage_type": "request"}, alice)]
    rows = run(conn, "service_role", alice, fill(MONTHLY_USAGE, org=org))
    assert rows == month_usage(conn, org) == [(meter, 1, 1)]


def test_step_4_as_the_back_end_records_the_payment(conn, acme) -> None:
    org, alice = acme["org"], acme["alice"]
    assert run(conn, "service_role", alice, fill(STEP_4, org=org)) == 1
    payments = conn.execute("select amount_minor, currency, provider, provider_payment_id, status, reason, metadata "
                            "from billing.one_off_payments where organization_id = %s", (org,)).fetchall()
    assert payments == [(9999, "USD", "stripe", "pi_...", "succeeded", "addon",
                         {"stripe_payment_id": "pi_...", "plan": "pro", "billing_period": "2025-11"})]
    shown = run(conn, "service_role", alice, "select amount, currency, payment_method, status "
                                             f"from client_services.billing_records where organization_id = '{org}'")
    assert shown == [(Decimal("99.99"), "USD", "stripe", "succeeded")]
    listed = run(conn, "service_role", alice, "select kind, amount from client_services.transactions "
                                              f"where organization_id = '{org}'")
    assert listed == [("payment", Decimal("99.99"))]


def test_step_1_without_a_user_is_refused(conn) -> None:
    """The service role with no sub: an organization needs an owner."""
    err = refused(conn, "service_role", None, STEP_1)
    assert err.sqlstate == REFUSED and "needs an owner" in err.diag.message_primary
    assert conn.execute("select count(*) from tenancy.organizations where slug = 'acme-corp'").fetchone()[0] == 0


def test_the_guides_rls_example_cannot_run_on_a_view(conn, acme) -> None:
    """The views inherit the tables' policies instead (docs/design-appendix.md)."""
    with pytest.raises(psycopg.Error) as info:
        conn.execute(RLS_EXAMPLE)
    assert info.value.sqlstate == "42809"  # wrong_object_type: not a table


# -- a signed-in member ------------------------------------------------------

def test_the_guide_as_a_signed_in_member(conn) -> None:
    carol, dave, mia = (new_user(conn, e) for e in ("carol@c.test", "dave@c.test", "mia@c.test"))
    # Step 1 as written asks for enterprise: plans are sold, not chosen.
    err = refused(conn, "authenticated", carol, STEP_1)
    assert err.sqlstate == REFUSED, err
    assert conn.execute("select count(*) from tenancy.organizations where slug = 'acme-corp'").fetchone()[0] == 0
    # On the free plan (the one every organization gets) it works; carol owns it.
    [(org, slug)] = run(conn, "authenticated", carol, STEP_1_FREE)
    assert slug == "acme-corp" and owners(conn, org) == [carol]
    assert live_plan(conn, org) == "free"
    assert conn.execute("select metadata from tenancy.organizations where id = %s", (org,)).fetchone()[0] == GUIDE_METADATA
    # Step 2: members join through invitations, not by insert.
    err = refused(conn, "authenticated", carol, fill(STEP_2, org=org, user=dave))
    assert err.sqlstate == REFUSED and "invite_member" in (err.diag.message_hint or ""), err
    assert conn.execute("select count(*) from tenancy.memberships where user_id = %s and organization_id = %s",
                        (dave, org)).fetchone()[0] == 0
    # Step 3 by a member whose role carries usage.record.
    conn.execute("insert into tenancy.memberships (organization_id, user_id, role_key) values (%s, %s, 'tenant_member')", (org, mia))
    assert conn.execute("select private.user_has_permission(%s, %s, 'usage.record')", (org, mia)).fetchone()[0]
    assert run(conn, "authenticated", mia, fill(STEP_3, org=org)) == 1
    assert conn.execute("select count(*) from usage.events where organization_id = %s and user_id = %s",
                        (org, mia)).fetchone()[0] == 1
    # Step 4: payments come from the payment provider, not even the owner records one.
    err = refused(conn, "authenticated", carol, fill(STEP_4, org=org))
    assert err.sqlstate == REFUSED, err
    assert conn.execute("select count(*) from billing.one_off_payments where organization_id = %s", (org,)).fetchone()[0] == 0
    # The monthly usage query: her organization's rows; another's, none.
    assert run(conn, "authenticated", mia, fill(MONTHLY_USAGE, org=org)) == month_usage(conn, org) == [(expected_meter(conn), 1, 1)]
    elsewhere = personal_org(conn, dave)
    conn.execute("select private.record_usage(%s, 'api_call', 5, 'elsewhere', now(), '{}')", (elsewhere,))
    assert month_usage(conn, elsewhere) != []
    assert run(conn, "authenticated", mia, fill(MONTHLY_USAGE, org=elsewhere)) == []


def test_a_guest_cannot_record_usage(conn, acme) -> None:
    """Step 3 needs usage.record: a guest (tenant_guest) is refused as by record_usage."""
    gil = new_user(conn, "gil@acme.test")
    conn.execute("insert into tenancy.memberships (organization_id, user_id, role_key, member_type) values (%s, %s, 'tenant_guest', 'guest')",
                 (acme["org"], gil))
    err = refused(conn, "authenticated", gil, fill(STEP_3, org=acme["org"]))
    assert err.sqlstate == REFUSED
    assert conn.execute("select count(*) from usage.events where organization_id = %s", (acme["org"],)).fetchone()[0] == 0


# -- another organization's member, and anon ---------------------------------

@pytest.fixture
def full_acme(conn, acme) -> dict[str, uuid.UUID]:
    """Acme after the whole guide (as the back end), plus a credit, so that
    every view has rows of it."""
    org, alice = acme["org"], acme["alice"]
    bob = new_user(conn, "bob@acme.test")
    run(conn, "service_role", alice, fill(STEP_2, org=org, user=bob))
    run(conn, "service_role", alice, fill(STEP_3, org=org))
    run(conn, "service_role", alice, fill(STEP_4, org=org))
    conn.execute("select public.post_credit(%s, 500, 'USD', 'promo', 'acme-promo', 'welcome credit')", (org,))
    return {**acme, "bob": bob}


def view_filter(view: str, org: uuid.UUID) -> str:
    return f"{'id' if view == 'organizations' else 'organization_id'} = '{org}'"


def snapshot(conn: psycopg.Connection, org: uuid.UUID) -> tuple:
    return conn.execute(
        "select (select row(name, slug, status, metadata)::text from tenancy.organizations where id = %(o)s),"
        " (select array_agg(row(user_id, role_key, status)::text order by user_id) from tenancy.memberships where organization_id = %(o)s),"
        " (select count(*) from usage.events where organization_id = %(o)s),"
        " (select count(*) from billing.one_off_payments where organization_id = %(o)s),"
        " (select count(*) from billing.credit_ledger where organization_id = %(o)s),"
        " (select plan_key from billing.subscriptions where organization_id = %(o)s and status <> 'canceled')",
        {"o": org}).fetchone()


def test_another_organizations_member_reads_and_writes_nothing_of_it(conn, full_acme) -> None:
    org = full_acme["org"]
    eve = new_user(conn, "eve@other.test")
    for view in VIEWS:
        query = f"select count(*) from client_services.{view} where {view_filter(view, org)}"
        assert conn.execute(query).fetchone()[0] > 0, f"{view}: acme has rows (the owner sees them)"
        assert run(conn, "authenticated", eve, query) == [(0,)], f"{view}: eve sees acme's rows"
    before = snapshot(conn, org)
    writes = {
        "step 2 (eve adds herself)": fill(STEP_2, org=org, user=eve),
        "step 3": fill(STEP_3, org=org),
        "step 4": fill(STEP_4, org=org),
        "organizations metadata": f"update client_services.organizations set metadata = '{{}}' where id = '{org}'",
        "organizations plan": f"update client_services.organizations set plan_type = 'free' where id = '{org}'",
        "organizations delete": f"delete from client_services.organizations where id = '{org}'",
        "accounts role": f"update client_services.accounts set role = 'owner' where organization_id = '{org}'",
        "accounts delete": f"delete from client_services.accounts where organization_id = '{org}'",
        "usage_logs update": f"update client_services.usage_logs set quantity = 2 where organization_id = '{org}'",
        "usage_logs delete": f"delete from client_services.usage_logs where organization_id = '{org}'",
        "billing_records update": f"update client_services.billing_records set status = 'refunded' where organization_id = '{org}'",
        "billing_records delete": f"delete from client_services.billing_records where organization_id = '{org}'",
        "transactions insert": f"insert into client_services.transactions (organization_id, amount, currency) values ('{org}', 1, 'USD')",
    }
    for what, sql in writes.items():
        err = refused(conn, "authenticated", eve, sql)
        assert err.sqlstate == REFUSED, f"{what}: {err.sqlstate} {err}"
    # The real tables refuse the same statements the same way.
    for real in (f"update tenancy.organizations set metadata = '{{}}' where id = '{org}'",
                 f"delete from tenancy.organizations where id = '{org}'",
                 f"update tenancy.memberships set role_key = 'tenant_owner' where organization_id = '{org}'",
                 f"insert into tenancy.memberships (organization_id, user_id, role_key) values ('{org}', '{eve}', 'tenant_admin')",
                 f"delete from usage.events where organization_id = '{org}'",
                 f"insert into billing.one_off_payments (organization_id, provider, provider_payment_id, amount_minor, currency, reason) "
                 f"values ('{org}', 'stripe', 'x', 1, 'USD', 'addon')"):
        assert refused(conn, "authenticated", eve, real).sqlstate == REFUSED, real
    # Renaming: the table's RLS lets the statement run and hides the row
    # (0 rows, no error) — the view answers the same.
    rename = "update {} set name = 'Pwned' where id = '" + str(org) + "'"
    assert run(conn, "authenticated", eve, rename.format("client_services.organizations")) == 0
    assert run(conn, "authenticated", eve, rename.format("tenancy.organizations")) == 0
    assert snapshot(conn, org) == before


def test_anon_reads_nothing(conn, full_acme) -> None:
    for view in VIEWS:
        err = refused(conn, "anon", None, f"select count(*) from client_services.{view}")
        assert err.sqlstate == REFUSED, view
    for sql in (STEP_1, fill(STEP_3, org=full_acme["org"])):
        assert refused(conn, "anon", None, sql).sqlstate == REFUSED


# -- amounts ----------------------------------------------------------------

PAYMENT = ("INSERT INTO client_services.billing_records (organization_id, amount, currency, payment_method, status, metadata) "
           "VALUES ('{org}', {amount}, '{currency}', 'stripe', 'paid', jsonb_build_object('stripe_payment_id', '{pid}'))")
# ISO 4217 minor units, as the standard lists them.
ISO_EXPONENT = {"USD": 2, "JPY": 0, "KWD": 3}


def payments(conn: psycopg.Connection, org: uuid.UUID) -> list[tuple]:
    return conn.execute("select provider_payment_id, amount_minor, currency from billing.one_off_payments "
                        "where organization_id = %s order by 1", (org,)).fetchall()


@pytest.mark.parametrize("amount, currency", [("99.99", "USD"), ("100", "JPY"), ("1.5", "KWD"), ("0.001", "KWD")])
def test_amounts_convert_by_the_currency_exponent(conn, acme, amount: str, currency: str) -> None:
    org = acme["org"]
    minor = Decimal(amount).scaleb(ISO_EXPONENT[currency])
    assert minor == minor.to_integral_value()
    [(shown_amount, shown_minor)] = run(conn, "service_role", None,
                                        PAYMENT.format(org=org, amount=amount, currency=currency, pid="pi_1")
                                        + " RETURNING amount, amount_minor")
    assert payments(conn, org) == [("pi_1", int(minor), currency)]
    assert (shown_amount, shown_minor) == (Decimal(amount), int(minor))


def test_an_amount_finer_than_the_currency_is_refused_and_nothing_written(conn, acme) -> None:
    org = acme["org"]
    err = refused(conn, "service_role", None, PAYMENT.format(org=org, amount="99.999", currency="USD", pid="pi_1"))
    assert err.sqlstate == "22023"
    assert "USD" in err.diag.message_primary and "exponent 2" in err.diag.message_primary
    err = refused(conn, "service_role", None, PAYMENT.format(org=org, amount="1.5", currency="JPY", pid="pi_2"))
    assert err.sqlstate == "22023" and "exponent 0" in err.diag.message_primary
    assert payments(conn, org) == []


def test_an_unknown_currency_is_refused(conn, acme) -> None:
    for code in ("XYZ", "XAU"):  # not a currency; gold, which has no minor unit
        err = refused(conn, "service_role", None, PAYMENT.format(org=acme["org"], amount="1", currency=code, pid="pi_1"))
        assert err.sqlstate == "22023" and code in err.diag.message_primary
    assert payments(conn, acme["org"]) == []


# -- verify ------------------------------------------------------------------

def test_verify_passes_and_checks_the_compatibility_views(dsn: str, conn) -> None:
    """verify passes with 0016 applied, and its view check covers
    client_services: a view there that runs with its owner's rights (and so
    would skip the tables' RLS) is reported."""
    from tenantdb import verify
    from tenantdb.engine import Engine
    from tenantdb.render import Renderer, Target

    engine = Engine(dsn, Renderer(Target()), echo=lambda _line: None)
    assert verify.problems(engine) == []
    conn.execute("create view client_services.leaky as select id, name from tenancy.organizations")
    found = {(p.check, p.object) for p in verify.problems(engine)}
    assert ("view", "client_services.leaky") in found, found


# -- optional: left out, or rolled back -------------------------------------

def test_the_change_is_optional_and_its_rollback_leaves_what_was_there(empty_db_factory) -> None:
    """Nothing else depends on 0016: a project migrates without it (and
    verify passes), and rolling 0016 back leaves exactly the schema of a
    database that never had it — every view, trigger and function it made
    is gone, nothing else is."""
    from tenantdb import verify
    from tenantdb.engine import Engine
    from tenantdb.render import Renderer, Target
    from test_engine import schema_dump

    without = Renderer(Target(), without=("0016_client_services",))
    assert "0016_client_services" not in [c.id for c in without.changes()]
    assert not any("client_services" in c.sql or any("client_services" in r.sql for r in c.repeatables)
                   for c in without.changes()), "another change mentions client_services"
    never, rolled_back = empty_db_factory(), empty_db_factory()
    engine = Engine(never, without, echo=lambda _line: None)
    engine.migrate()
    engine.seed()
    assert verify.problems(engine) == []
    with psycopg.connect(never) as c:
        assert c.execute("select to_regnamespace('client_services')").fetchone()[0] is None
    full = Engine(rolled_back, Renderer(Target()), echo=lambda _line: None)
    full.migrate()
    full.seed()
    with psycopg.connect(rolled_back) as c:
        assert c.execute("select count(*) from pg_proc where pronamespace = 'private'::regnamespace "
                         "and (proname like 'client_services%' or proname = 'currency_exponent')").fetchone()[0] > 0
    later = [c.id for c in Renderer(Target()).changes()]
    later = later[later.index("0016_client_services"):]
    assert full.rollback(to="0015_seed_contract", allow_data_loss=True) == len(later)
    Engine(rolled_back, without, echo=lambda _line: None).migrate()  # the changes after 0016 come back without it
    assert schema_dump(rolled_back) == schema_dump(never)
