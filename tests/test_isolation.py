"""The isolation matrix, generated from the catalog.

For every table of every tenantdb domain schema, five attackers try to
select, insert, update and delete the victim's rows (organization A's, or
Alice's own, or a CRM person's own record), through the same role switch and
request.jwt.claims PostgREST uses: a member of another organization, an
anonymous caller, a member of organization A whose role carries no
permission, and the owner of an organization that serves the same CRM
person as A (the shared record: it must reach none of A's records of that
client, nor the person's own), and the member of another organization with
a token scoped to organization A (role organization_scoped). Each attempt must see
or change nothing. A new table is covered without editing this file; one
with no victim row in the fixture fails until the fixture gets one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql

# co_provider: a member (the owner) of another organization that serves the
# same person (verified) with a record of its own: the shared record's test.
# scoped_outsider: the member of another organization with a token naming
# the role organization_scoped and organization A as its active one (the
# scope only narrows: it must open nothing). scoped_elsewhere: Tara, an
# admin of organization A, in a request scoped to her personal
# organization (through the pre-request scope_request): the scope must
# hide and protect all of A's rows from her.
ACTORS = ("outsider", "anon", "no_permission_member", "co_provider", "scoped_outsider", "scoped_elsewhere")
# The pricing page (seed 001): anon reads the public, active catalog and
# nothing else. For these tables anon's victims are the other rows.
ANON_PUBLIC = {
    "catalog.plans": "is_active and not is_custom",
    "catalog.plan_features": "plan_key in (select p.key from catalog.plans p where p.is_active and not p.is_custom)",
    "catalog.features": "key in (select pf.feature_key from catalog.plan_features pf join catalog.plans p on p.key = pf.plan_key"
                        " where p.is_active and not p.is_custom)",
}
OPERATIONS = ("select", "insert", "update", "delete")
REFUSED = "42501"  # insufficient_privilege: no grant, or a row-level security violation


@dataclass
class Table:
    schema: str
    name: str
    victim_filter: sql.Composable
    catalog: bool  # readable by every signed-in user by design

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"


def domain_tables(conn: psycopg.Connection, ids: dict[str, str]) -> list[Table]:
    rows = conn.execute(
        """
        select n.nspname, c.relname,
               exists (select from pg_attribute a where a.attrelid = c.oid and a.attname = 'organization_id' and not a.attisdropped),
               exists (select from pg_attribute a where a.attrelid = c.oid and a.attname = 'user_id' and not a.attisdropped),
               exists (select from pg_constraint k join pg_attribute a on a.attrelid = k.conrelid and a.attnum = any (k.conkey)
                        where k.confrelid = c.oid and k.contype = 'f' and a.attname = 'organization_id'),
               exists (select from pg_constraint k join pg_attribute a on a.attrelid = k.conrelid and a.attnum = any (k.conkey)
                        where k.confrelid = c.oid and k.contype = 'f' and a.attname = 'user_id'),
               exists (select from pg_policies p where p.schemaname = n.nspname and p.tablename = c.relname
                        and p.cmd = 'SELECT' and p.qual = 'true')
          from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where c.relkind in ('r', 'p') and not c.relispartition
           and obj_description(n.oid, 'pg_namespace') like 'tenantdb %'
           and n.nspname not in ('tenantdb', 'private', 'auth', 'public')
         order by 1, 2
        """
    ).fetchall()
    tables = []
    for schema, name, has_org, has_user, is_org_root, is_user_root, catalog in rows:
        if has_org:
            flt = sql.SQL("organization_id = {}").format(sql.Literal(ids["org_a"]))
        elif is_org_root:
            flt = sql.SQL("id = {}").format(sql.Literal(ids["org_a"]))
        elif has_user:
            flt = sql.SQL("user_id = {}").format(sql.Literal(ids["alice"]))
        elif is_user_root:
            flt = sql.SQL("id = {}").format(sql.Literal(ids["alice"]))
        else:
            flt = sql.SQL("true")
        # Catalog: reference data open to every signed-in user; never a table
        # that holds an organization's or a user's rows.
        is_catalog = catalog and not (has_org or is_org_root or has_user or is_user_root)
        tables.append(Table(schema, name, flt, is_catalog))
    return tables


@pytest.fixture
def world(dsn: str) -> dict[str, str]:
    """Organization A (Alice owns it; Nina is a member with no permission;
    Tara is an admin), organization B (Bob), and a row of A's or Alice's in
    every table."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        def user(email: str) -> str:
            return str(conn.execute("insert into auth.users (email) values (%s) returning id", (email,)).fetchone()[0])

        def as_user(uid: str, query: str, params: tuple = ()) -> object:
            with conn.transaction():
                conn.execute("select set_config('request.jwt.claims', %s, true), set_config('role', 'authenticated', true)",
                             (json.dumps({"sub": uid, "role": "authenticated"}),))
                return conn.execute(query, params).fetchone()[0]

        ids = {"alice": user("alice@a.test"), "bob": user("bob@b.test"), "nina": user("nina@a.test")}
        ids["org_a"] = str(as_user(ids["alice"], "select public.create_organization('Org A', 'org-a')"))
        ids["org_b"] = str(as_user(ids["bob"], "select public.create_organization('Org B', 'org-b')"))
        # A is on a plan with seats for its members (the free plan has one: its owner's).
        conn.execute("select public.change_subscription_plan(%s, 'pro')", (ids["org_a"],))
        conn.execute("insert into iam.roles (key, name, is_system) values ('test_no_permissions', 'No permissions', false)")
        conn.execute("insert into tenancy.memberships (organization_id, user_id, role_key) values (%s, %s, 'test_no_permissions')",
                     (ids["org_a"], ids["nina"]))
        ids["tara"] = user("tara@a.test")
        ids["tara_personal"] = str(conn.execute("select id from tenancy.organizations where personal_owner_id = %s",
                                                (ids["tara"],)).fetchone()[0])
        conn.execute("insert into tenancy.memberships (organization_id, user_id, role_key) values (%s, %s, 'tenant_admin')",
                     (ids["org_a"], ids["tara"]))
        as_user(ids["alice"], "select count(*) from public.invite_member(%s, 'carol@a.test')", (ids["org_a"],))
        conn.execute("insert into iam.system_role_grants (user_id, role_key, reason) values (%s, 'platform_support', 'fixture')",
                     (ids["alice"],))
        # Billing and usage rows of organization A (as the back end would write them).
        org_a = ids["org_a"]
        conn.execute("insert into billing.settings (organization_id, time_zone) values (%s, 'UTC')", (org_a,))
        conn.execute("insert into billing.payment_customers (organization_id, provider, provider_customer_id) values (%s, 'stripe', 'cus_a')", (org_a,))
        conn.execute("select public.record_one_off_payment(%s, 'stripe', 'pi_a', 5000, 'USD', 'topup', 'succeeded')", (org_a,))
        conn.execute("select * from public.ingest_payment_event('stripe', 'evt_a', 'payment.succeeded', %s, now())",
                     (json.dumps({"organization_id": org_a, "provider_payment_id": "pi_b", "amount_minor": 700,
                                  "currency": "USD", "reason": "addon"}),))
        conn.execute("select * from public.process_payment_events('fixture')")
        conn.execute("select * from public.record_usage(%s, 'api_call', 100001, 'fixture-1')", (org_a,))
        # A monthly active user (usage.unique_values), and a key of an event
        # older than the register's horizon (usage.idempotency_keys), as
        # register_usage_keys moves it there.
        conn.execute("select * from public.record_usage(%s, 'user_active', 1, 'fixture-mau', now(), %s)",
                     (org_a, json.dumps({"user_id": ids["alice"]})))
        conn.execute("insert into usage.idempotency_keys (organization_id, idempotency_key, event_id, occurred_at) "
                     "values (%s, 'fixture-old', gen_random_uuid(), now() - interval '1 year')", (org_a,))
        conn.execute("select public.aggregate_usage('daily', now() - interval '1 day', now() + interval '1 day')")
        conn.execute("select public.record_organization_usage(%s)", (org_a,))
        billed = conn.execute("select public.generate_invoice(%s, (select start_date from private.billing_period(%s, now())))",
                              (org_a, org_a)).fetchone()[0]
        # A failed payment attempt the provider reported on it (invoice_settlements).
        conn.execute("select public.finalize_invoice(%s, %s)", (org_a, billed))
        conn.execute("select * from public.ingest_payment_event('stripe', 'evt_a_inv', 'invoice.payment_failed', %s, now())",
                     (json.dumps({"organization_id": org_a, "invoice_id": str(billed)}),))
        conn.execute("select * from public.process_payment_events('fixture')")
        conn.execute("insert into billing.connected_accounts (organization_id, provider, provider_account_id, application_fee_bps, status) "
                     "values (%s, 'stripe', 'acct_a', 250, 'active')", (org_a,))
        conn.execute("select public.track_platform_revenue(%s, 'stripe', 'ch_a', 10000, 'USD')", (org_a,))
        # Audit rows: a platform member impersonates Alice, breaks glass, opens an incident.
        ids["sam"] = user("sam@platform.test")
        conn.execute("insert into iam.system_role_grants (user_id, role_key, reason) values (%s, 'platform_superadmin', 'fixture'), "
                     "(%s, 'platform_break_glass', 'fixture')", (ids["sam"], ids["sam"]))
        conn.execute("update iam.system_role_grants set revoked_at = now(), revoke_reason = 'fixture' "
                     "where user_id = %s and role_key = 'platform_support'", (ids["alice"],))
        as_user(ids["sam"], "select public.start_impersonation(%s, 'support ticket 1', 30)", (ids["alice"],))
        as_user(ids["sam"], "select public.end_impersonation()")
        conn.execute("insert into iam.system_role_grants (user_id, role_key, reason) values (%s, 'platform_break_glass', 'fixture')",
                     (ids["alice"],))
        as_user(ids["alice"], "select public.activate_break_glass('database is on fire', 30)")
        as_user(ids["sam"], "select public.open_incident('Fixture incident', 'low')")
        # Privacy rows of Alice's.
        as_user(ids["alice"], "select public.give_consent('marketing', 'v1')")
        as_user(ids["alice"], "select public.submit_subject_request('access')")
        conn.execute("insert into privacy.erasures (user_id, columns_erased, rows_deleted) values (%s, 0, 0)", (ids["alice"],))
        # CRM rows of organization A: a client (opted in to email) with an address,
        # settings, a service, a job with its reminders, an invoice with a line and
        # a payment, a campaign with its send; Alice linked to the person with her
        # email; a person erased.
        person = conn.execute("select person_id from public.upsert_person('carl@client.test', '+15550001111', 'Carl', 'Client')").fetchone()[0]
        client = conn.execute("insert into crm.org_clients (organization_id, person_id, status, tags) "
                              "values (%s, %s, 'active', '{vip}') returning id", (org_a, person)).fetchone()[0]
        address = conn.execute("insert into crm.client_addresses (organization_id, org_client_id, address1, city) "
                               "values (%s, %s, '1 Elm St', 'Springfield') returning id", (org_a, client)).fetchone()[0]
        conn.execute("update crm.org_clients set default_address_id = %s where id = %s", (address, client))
        # Carl verifies his email: A's client is his person, and he keeps his
        # own record (an address, an opt-in). Dave's organization D serves
        # him too, with a record of its own: the co-provider.
        ids["carl"] = str(conn.execute("insert into auth.users (email, email_confirmed_at, phone, phone_confirmed_at) "
                                       "values ('carl@client.test', now(), '+15550003333', now()) returning id").fetchone()[0])
        as_user(ids["carl"], "select public.add_person_address(%s, '{\"address1\": \"9 Home Rd\"}')", (person,))
        as_user(ids["carl"], "select public.set_marketing_consent(%s, 'email', true)", (person,))
        conn.execute("select public.set_marketing_consent(%s, 'sms', true, %s)", (person, org_a))
        ids["dave"] = user("dave@d.test")
        ids["org_d"] = str(as_user(ids["dave"], "select public.create_organization('Org D', 'org-d')"))
        as_user(ids["dave"], "select public.create_job_with_optional_new_client(%s, p_client => %s, p_start_at => now() + interval '2 days')",
                (ids["org_d"], json.dumps({"first_name": "Carlos", "email": "carl@client.test", "address": {"address1": "5 Dock St"}})))
        assert conn.execute("select count(distinct person_id) from crm.org_clients where person_id = %s", (person,)).fetchone()[0] == 1
        conn.execute("insert into crm.org_client_settings (organization_id, org_client_id, pricing_tier) values (%s, %s, 'gold')", (org_a, client))
        service = conn.execute("insert into crm.services (organization_id, name, default_price_cents) values (%s, 'Lawn mowing', 5000) "
                               "returning id", (org_a,)).fetchone()[0]
        conn.execute("select public.create_job_with_optional_new_client(%s, %s, null, %s, now() + interval '3 days')", (org_a, client, service))
        invoice = conn.execute("insert into crm.invoices (organization_id, org_client_id, currency, due_date) "
                               "values (%s, %s, 'USD', current_date + 10) returning id", (org_a, client)).fetchone()[0]
        conn.execute("insert into crm.invoice_lines (organization_id, invoice_id, description, unit_price_cents) values (%s, %s, 'Mowing', 5000)",
                     (org_a, invoice))
        conn.execute("update crm.invoices set status = 'open' where id = %s", (invoice,))
        conn.execute("insert into crm.payments (organization_id, invoice_id, currency, amount_cents, status) values (%s, %s, 'USD', 2000, 'succeeded')",
                     (org_a, invoice))
        campaign = conn.execute("insert into crm.campaigns (organization_id, channel, name, segment) values (%s, 'email', 'Spring', "
                                "'{\"status\": [\"active\"]}') returning id", (org_a,)).fetchone()[0]
        conn.execute("select public.queue_campaign_sends(%s)", (campaign,))
        alice_person = conn.execute("select person_id from public.upsert_person('alice@a.test')").fetchone()[0]
        conn.execute("insert into crm.user_person_links (user_id, person_id, linked_via) values (%s, %s, 'signup')", (ids["alice"], alice_person))
        conn.execute("insert into privacy.person_erasures (person_id, columns_erased, rows_deleted) values (gen_random_uuid(), 0, 0)")
        # A feature only the custom (enterprise) plan has: not public.
        conn.execute("insert into catalog.features (key, name, kind, meter_key) values ('isolation_secret', 'Secret', 'limit', 'api_call')")
        conn.execute("insert into catalog.plan_features (plan_key, feature_key, feature_kind, limit_value) "
                     "values ('enterprise', 'isolation_secret', 'limit', 5)")
        # A project of organization A, created by Alice (its live count with it).
        as_user(ids["alice"], "insert into app.projects (organization_id, title) values (%s, 'Project A') returning id", (org_a,))
        if conn.execute("select to_regclass('identity.sessions') is not null").fetchone()[0]:
            conn.execute("insert into identity.sessions (user_id, token_hash, expires_at) values (%s, repeat('a', 64), now() + interval '1 day')",
                         (ids["alice"],))
            conn.execute("insert into identity.accounts (user_id, provider_id, account_id) values (%s, 'credential', 'alice')",
                         (ids["alice"],))
            conn.execute("insert into identity.verifications (identifier, value_hash, purpose, expires_at) "
                         "values ('alice@a.test', repeat('b', 64), 'email_verification', now() + interval '1 hour')")
    return ids


def act(conn: psycopg.Connection, actor: str, ids: dict[str, str]) -> None:
    if actor == "anon":
        claims, role = {"role": "anon"}, "anon"
    elif actor == "scoped_outsider":
        claims, role = {"sub": ids["bob"], "role": "organization_scoped", "organization_id": ids["org_a"]}, "organization_scoped"
    elif actor == "scoped_elsewhere":
        claims, role = {"sub": ids["tara"], "role": "authenticated", "organization_id": ids["tara_personal"]}, "authenticated"
    else:
        uid = {"outsider": ids["bob"], "co_provider": ids["dave"]}.get(actor, ids["nina"])
        claims, role = {"sub": uid, "role": "authenticated"}, "authenticated"
    conn.execute("select set_config('request.jwt.claims', %s, true), set_config('role', %s, true)", (json.dumps(claims), role))
    conn.execute("select public.scope_request()")  # PostgREST's pre-request
    if actor.startswith("scoped_"):
        # A refused pre-request would make every attempt look refused.
        assert conn.execute("select current_user").fetchone()[0] == "organization_scoped", actor


def attack_copy(conn: psycopg.Connection, table: Table) -> str:
    """One victim row as json, with fresh values in its uuid and unique columns."""
    row = conn.execute(sql.SQL("select to_jsonb(t) from {} t where {} limit 1").format(table.ident, table.victim_filter)).fetchone()[0]
    unique_cols = {r[0] for r in conn.execute(
        """select a.attname from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any (i.indkey)
            where i.indrelid = %s::regclass and i.indisunique""", (str(table),)).fetchall()}
    for col in unique_cols:
        value = row.get(col)
        if isinstance(value, str) and len(value) == 36 and value.count("-") == 4 and col not in ("organization_id", "user_id"):
            row[col] = conn.execute("select gen_random_uuid()::text").fetchone()[0]
        elif isinstance(value, str) and col not in ("organization_id", "user_id"):
            row[col] = value[:-1] + ("x" if value[-1:] != "x" else "y")
    return json.dumps(row)


def victim_versions(conn: psycopg.Connection, table: Table) -> list[str]:
    """The row versions (ctid) of the victim's rows: an UPDATE makes new ones."""
    q = sql.SQL("select ctid::text from {} where {} order by ctid").format(table.ident, table.victim_filter)
    return [r[0] for r in conn.execute(q).fetchall()]


def writable_column(conn: psycopg.Connection, table: Table, actor: str) -> str:
    """A column the actor's role may UPDATE (so the attempt reaches RLS) that
    takes DEFAULT without breaking NOT NULL; else the first column."""
    role = "anon" if actor == "anon" else "authenticated"
    row = conn.execute(
        "select attname from pg_attribute where attrelid = %s::regclass and attnum > 0 and not attisdropped "
        "order by has_column_privilege(%s, attrelid, attname, 'UPDATE') desc, (atthasdef or not attnotnull) desc, attnum limit 1",
        (str(table), role)).fetchone()
    return row[0]


def attack(conn: psycopg.Connection, table: Table, actor: str, operation: str, world: dict[str, str]) -> list[str]:
    """One attempt by one attacker on one table; the failures it shows.

    Updates and deletes carry no WHERE clause, so only the write policies
    (not the select policy) stand between the attacker and the rows.
    """
    failures: list[str] = []
    if table.catalog and actor == "anon" and operation == "select" and str(table) in ANON_PUBLIC:
        table = Table(table.schema, table.name, sql.SQL("not ({})").format(sql.SQL(ANON_PUBLIC[str(table)])), True)
    before = victim_versions(conn, table)
    if not before:
        return [f"{table}: the fixture has no victim row; add one to world()"]
    if table.catalog and operation == "select" and actor != "anon":
        return []  # catalog rows are readable by every signed-in user by design
    payload = attack_copy(conn, table) if operation == "insert" else None
    column = writable_column(conn, table, actor)
    aim = sql.SQL("where {}").format(table.victim_filter) if actor == "co_provider" else sql.SQL("")
    conn.execute("savepoint attack")
    try:
        act(conn, actor, world)
        if operation == "select":
            seen = conn.execute(sql.SQL("select count(*) from {} where {}").format(table.ident, table.victim_filter)).fetchone()[0]
            if seen:
                failures.append(f"{table}: {actor} saw {seen} victim row(s)")
        elif operation == "insert":
            # Every column but generated ones (no client may write those).
            cols = [sql.Identifier(r[0]) for r in conn.execute(
                "select attname from pg_attribute where attrelid = %s::regclass and attnum > 0 and not attisdropped "
                "and attgenerated = '' order by attnum", (str(table),)).fetchall()]
            q = sql.SQL("insert into {} ({}) select {} from jsonb_populate_record(null::{}, %s)").format(
                table.ident, sql.SQL(", ").join(cols), sql.SQL(", ").join(cols), table.ident)
            cur = conn.execute(q, (payload,))
            failures.append(f"{table}: {actor} inserted {cur.rowcount} row(s) into the victim's tenancy")
        elif operation == "update":
            # SET col = DEFAULT reads nothing, so no SELECT policy hides the rows.
            # The co-provider has rows of its own: it aims at the victim's.
            conn.execute(sql.SQL("update {} set {} = default {}").format(table.ident, sql.Identifier(column), aim))
        else:
            conn.execute(sql.SQL("delete from {} {}").format(table.ident, aim))
        # The attempt went through: back to the test's role, still inside
        # the attack, and look at what it did to the victim's rows.
        conn.execute("reset role")
        after = victim_versions(conn, table)
        if len(after) != len(before):
            failures.append(f"{table}: {actor} {operation}: victim rows went from {len(before)} to {len(after)}")
        elif operation == "update" and after != before:
            failures.append(f"{table}: {actor} updated victim row(s)")
    except psycopg.Error as exc:
        # Refused: the savepoint rollback below undoes whatever it began.
        if exc.sqlstate != REFUSED:
            failures.append(f"{table}: {actor} {operation}: expected refusal {REFUSED}, got {exc.sqlstate}: {exc.diag.message_primary}")
    conn.execute("rollback to savepoint attack")
    return failures


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("operation", OPERATIONS)
def test_attacker_sees_and_changes_nothing(dsn: str, world: dict[str, str], actor: str, operation: str) -> None:
    failures: list[str] = []
    with psycopg.connect(dsn) as conn:
        tables = domain_tables(conn, world)
        assert len(tables) >= 9, [str(t) for t in tables]
        for table in tables:
            failures += attack(conn, table, actor, operation, world)
        conn.rollback()
    assert not failures, "\n".join(failures)


def test_matrix_refuses_a_table_left_open(dsn: str, world: dict[str, str]) -> None:
    """The matrix can fail: a tenant table without RLS, one with an update
    policy open to all, and one open to scoped requests are reported."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("create table tenancy.leaky (organization_id uuid not null references tenancy.organizations (id), "
                     "id uuid default gen_random_uuid(), note text, primary key (organization_id, id))")
        conn.execute("grant select, update on tenancy.leaky to authenticated")
        conn.execute("insert into tenancy.leaky (organization_id) values (%s)", (world["org_a"],))
        conn.execute("drop policy tenant_update on tenancy.organizations")
        conn.execute("create policy wide_open on tenancy.organizations for update to authenticated using (true) with check (true)")
        conn.execute("drop policy scoped_select on app.projects")
        conn.execute("create policy wide_open_scoped on app.projects for select to organization_scoped using (true)")
    with psycopg.connect(dsn) as conn:
        tables = {t.name: t for t in domain_tables(conn, world)}
        # A select policy of the scoped role's open to all shows A's project
        # to A's admin scoped elsewhere.
        assert any("saw 1 victim row" in f for f in attack(conn, tables["projects"], "scoped_elsewhere", "select", world))
        assert attack(conn, tables["invoices"], "scoped_elsewhere", "select", world) == []
        assert any("saw 1 victim row" in f for f in attack(conn, tables["leaky"], "outsider", "select", world))
        assert any("updated victim row" in f for f in attack(conn, tables["leaky"], "outsider", "update", world))
        assert any("updated victim row" in f for f in attack(conn, tables["organizations"], "outsider", "update", world))
        assert attack(conn, tables["memberships"], "outsider", "update", world) == []


# -- Reads at index speed ------------------------------------------------
# A policy that an index cannot serve (an OR of the organization filter with
# a run-time flag, a function per row) turns every read into a sequential
# scan. These tests read the plan, not the clock: EXPLAIN as the member,
# with sequential scans disabled, must find a way in through an index.

def seq_scans(plan: dict) -> list[str]:
    """The relations a plan (EXPLAIN FORMAT JSON) reads with a Seq Scan."""
    found = [plan.get("Relation Name", "?")] if plan.get("Node Type") == "Seq Scan" else []
    for child in plan.get("Plans", []):
        found += seq_scans(child)
    return found


def explain_as(conn: psycopg.Connection, role: str, claims: dict, query: sql.Composable) -> dict:
    conn.execute("select set_config('request.jwt.claims', %s, true), set_config('role', %s, true)", (json.dumps(claims), role))
    conn.execute("set local enable_seqscan = off")
    plan = conn.execute(sql.SQL("explain (format json) ") + query).fetchone()[0][0]["Plan"]
    conn.execute("reset role")
    return plan


def policy_roles(conn: psycopg.Connection, table: Table) -> set[str]:
    rows = conn.execute("select unnest(roles)::text from pg_policies where schemaname = %s and tablename = %s and cmd in ('SELECT', 'ALL')",
                        (table.schema, table.name)).fetchall()
    return {r[0] for r in rows}


@pytest.mark.parametrize("role", ["authenticated", "organization_scoped"])
def test_member_reads_use_an_index_on_the_tenant_key(dsn: str, world: dict[str, str], role: str) -> None:
    """Every table a member reads through RLS (tenant tables by their
    organization, personal tables by their user): an unfiltered select, as
    the member would send it, is served by an index; also in a request
    scoped to organization A (role organization_scoped, its own policies)."""
    claims = {"sub": world["alice"], "role": role} | ({"organization_id": world["org_a"]} if role == "organization_scoped" else {})
    failures, checked = [], []
    with psycopg.connect(dsn) as conn:
        for table in domain_tables(conn, world):
            if table.catalog or role not in policy_roles(conn, table):
                continue
            checked.append(str(table))
            plan = explain_as(conn, role, claims, sql.SQL("select count(*) from {}").format(table.ident))
            if seq_scans(plan):
                failures.append(f"{table}: Seq Scan on {', '.join(seq_scans(plan))}")
        conn.rollback()
    assert {"usage.events", "billing.invoices", "tenancy.memberships", "privacy.consents"} <= set(checked), checked
    assert not failures, "\n".join(failures)


def test_platform_staff_read_every_organization_through_their_own_role(dsn: str, world: dict[str, str]) -> None:
    """Platform staff read organization A's rows through the platform_staff
    role (a staff token), at index speed for a filtered read; the same user
    with an ordinary token is a non-member of A and sees nothing there; a
    user without a platform grant sees nothing even with the staff role."""
    failures, checked = [], []
    with psycopg.connect(dsn) as conn:
        for table in domain_tables(conn, world):
            if "platform_staff" not in policy_roles(conn, table):
                continue
            checked.append(str(table))
            count = sql.SQL("select count(*) from {} where {}").format(table.ident, table.victim_filter)
            seen = {}
            for who, role in (("sam", "platform_staff"), ("sam", "authenticated"), ("bob", "platform_staff")):
                conn.execute("savepoint look")
                conn.execute("select set_config('request.jwt.claims', %s, true), set_config('role', %s, true)",
                             (json.dumps({"sub": world[who], "role": role}), role))
                seen[who, role] = conn.execute(count).fetchone()[0]
                conn.execute("rollback to savepoint look")
            if not seen["sam", "platform_staff"]:
                failures.append(f"{table}: platform staff read none of the victim's rows")
            if seen["bob", "platform_staff"]:
                failures.append(f"{table}: a user without a platform grant read {seen['bob', 'platform_staff']} row(s) as platform_staff")
            # (Sam impersonated Alice in the fixture: he sees that session as himself.)
            if seen["sam", "authenticated"] and str(table) != "audit.impersonation_sessions":
                failures.append(f"{table}: staff read {seen['sam', 'authenticated']} row(s) with an ordinary token")
            plan = explain_as(conn, "platform_staff", {"sub": world["sam"], "role": "platform_staff"},
                              sql.SQL("select count(*) from {} where {}").format(table.ident, table.victim_filter))
            if seq_scans(plan) and table.victim_filter.as_string(conn) != "true":
                failures.append(f"{table}: staff's filtered read is a Seq Scan on {', '.join(seq_scans(plan))}")
        conn.rollback()
    assert {"usage.events", "billing.invoices", "audit.platform_actions", "privacy.consents", "iam.system_role_grants"} <= set(checked), checked
    assert not failures, "\n".join(failures)


def test_a_revoked_membership_or_permission_stops_reading_in_the_next_statement(dsn: str, world: dict[str, str]) -> None:
    """org_ids_with_permission keeps its plan for the session, never its
    answer: a change committed by another session shows in the member's
    next statement."""
    with psycopg.connect(dsn, autocommit=True) as admin, psycopg.connect(dsn, autocommit=True) as member:
        admin.execute("insert into iam.roles (key, name, is_system) values ('test_reader', 'Reader', false)")
        grant = "insert into iam.role_permissions (role_key, role_is_system, permission_key, permission_is_platform) values ('test_reader', false, 'tenant.read', false)"
        admin.execute(grant)
        admin.execute("insert into tenancy.memberships (organization_id, user_id, role_key) values (%s, %s, 'test_reader')",
                      (world["org_a"], world["bob"]))

        def seen() -> int:
            with member.transaction():
                member.execute("select set_config('request.jwt.claims', %s, true), set_config('role', 'authenticated', true)",
                               (json.dumps({"sub": world["bob"], "role": "authenticated"}),))
                return member.execute("select count(*) from usage.events where organization_id = %s", (world["org_a"],)).fetchone()[0]

        assert all(seen() > 0 for _ in range(8))  # past the plan cache's first custom plans
        admin.execute("delete from iam.role_permissions where role_key = 'test_reader' and permission_key = 'tenant.read'")
        assert seen() == 0, "a revoked permission still reads"
        admin.execute(grant)
        assert seen() > 0
        admin.execute("update tenancy.memberships set status = 'suspended' where organization_id = %s and user_id = %s",
                      (world["org_a"], world["bob"]))
        assert seen() == 0, "a suspended membership still reads"
        admin.execute("update tenancy.memberships set status = 'active' where organization_id = %s and user_id = %s",
                      (world["org_a"], world["bob"]))
        admin.execute("update tenancy.organizations set status = 'deleted' where id = %s", (world["org_a"],))
        assert seen() == 0, "a deleted organization still reads"


# -- The shared record, function by function --------------------------------
# Dave's organization serves Carl (verified) as organization A does. Every
# API function that reads or writes the CRM is called by Dave with A's and
# Carl's ids: none may show him A's records of Carl or Carl's own record,
# nor change them. A CRM function missing here fails the test.

def co_provider_calls(w: dict[str, str]) -> dict[str, tuple[str, tuple]]:
    p, client, org_a = w["carl_person"], w["client_a"], w["org_a"]
    return {
        "upsert_person": ("select * from public.upsert_person('carl@client.test', '+15550001111', 'X', 'Y')", ()),
        "propagate_contact_update": ("select * from public.propagate_contact_update(%s, 'X', 'Y', 'x@y.test', '+15550002222')", (p,)),
        "add_person_address": ("select public.add_person_address(%s, '{\"address1\": \"2 Spy Lane\"}')", (p,)),
        "set_marketing_consent": ("select public.set_marketing_consent(%s, 'sms', false, %s)", (p, org_a)),
        "create_job_with_optional_new_client": ("select public.create_job_with_optional_new_client(%s, %s, p_start_at => now())", (org_a, client)),
        "schedule_reminders": ("select public.schedule_reminders()", ()),
        "claim_reminders": ("select * from public.claim_reminders('w')", ()),
        "claim_campaign_sends": ("select * from public.claim_campaign_sends('w')", ()),
        "complete_reminder": ("select public.complete_reminder((select id from crm.reminders limit 1), 'w')", ()),
        "complete_campaign_send": ("select public.complete_campaign_send((select id from crm.campaign_sends limit 1), 'w')", ()),
        "queue_campaign_sends": ("select public.queue_campaign_sends(%s)", (w["campaign_a"],)),
        "client_timeline": ("select * from public.client_timeline(%s)", (client,)),
        "client_stats": ("select public.client_stats(%s)", (org_a,)),
        "search_clients": ("select * from public.search_clients('carl', %s)", (org_a,)),
        "client_account": ("select public.client_account(%s)", (client,)),
        "my_service_history": ("select * from public.my_service_history()", ()),
        "export_person_data": ("select public.export_person_data(%s)", (p,)),
        "erase_person": ("select public.erase_person(%s)", (p,)),
        "export_user_data": ("select public.export_user_data(%s)", (w["carl"],)),
    }


A_RECORDS = ("1 Elm St", "Springfield", '"Client"', "+15550001111", '"vip"', "9 Home Rd")


def crm_snapshot(conn: psycopg.Connection, w: dict[str, str]) -> list:
    """Organization A's CRM rows and Carl's own record (his person's rows), as json."""
    rows = []
    for (table,) in conn.execute("select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                                 "where n.nspname = 'crm' and c.relkind = 'r' order by 1").fetchall():
        columns = {r[0] for r in conn.execute("select attname from pg_attribute where attrelid = %s::regclass and attnum > 0",
                                              (f"crm.{table}",)).fetchall()}
        key = "organization_id" if "organization_id" in columns else "person_id" if "person_id" in columns else "id"
        flt = sql.SQL("{} = {}").format(sql.Identifier(key), sql.Literal(w["org_a"] if key == "organization_id" else w["carl_person"]))
        rows += [r[0] for r in conn.execute(sql.SQL("select to_jsonb(t) from {} t where {} order by 1::text").format(
            sql.Identifier("crm", table), flt)).fetchall()]
    return sorted(json.dumps(r, sort_keys=True) for r in rows)


def test_a_co_provider_reaches_nothing_through_any_crm_function(dsn: str, world: dict[str, str]) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        w = dict(world)
        w["carl_person"], w["client_a"] = [str(v) for v in conn.execute(
            "select person_id, id from crm.org_clients where organization_id = %s and email = 'carl@client.test'", (w["org_a"],)).fetchone()]
        w["campaign_a"] = str(conn.execute("select id from crm.campaigns where organization_id = %s", (w["org_a"],)).fetchone()[0])
        crm_api = {r[0] for r in conn.execute(
            "select p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
            "where n.nspname = 'private' and p.prosrc ~ 'crm[._]' "
            "and exists (select from pg_proc a join pg_namespace an on an.oid = a.pronamespace where an.nspname = 'public' and a.proname = p.proname)"
        ).fetchall()}
        calls = co_provider_calls(w)
        assert crm_api == set(calls), f"CRM API functions without a co-provider call: {crm_api - set(calls)}; gone: {set(calls) - crm_api}"
        before = crm_snapshot(conn, w)
        failures = []
        for name, (query, params) in sorted(calls.items()):
            with conn.transaction():
                conn.execute("select set_config('request.jwt.claims', %s, true), set_config('role', 'authenticated', true)",
                             (json.dumps({"sub": w["dave"], "role": "authenticated"}),))
                try:
                    with conn.transaction():
                        seen = json.dumps([list(r) for r in conn.execute(query, params).fetchall()], default=str)
                except psycopg.Error as exc:
                    if exc.sqlstate not in ("42501", "P0002"):
                        failures.append(f"{name}: {exc.sqlstate} {exc.diag.message_primary}")
                    seen = str(exc)
            leaked = [s for s in A_RECORDS if s in seen]
            if leaked:
                failures.append(f"{name}: showed {leaked}")
        assert crm_snapshot(conn, w) == before, "a co-provider's call changed A's records or Carl's own"
        # The co-provider's own record did change (the calls were not all refused).
        assert conn.execute("select first_name from crm.org_clients where organization_id = %s", (w["org_d"],)).fetchone()[0] == "X"
    assert not failures, "\n".join(failures)
