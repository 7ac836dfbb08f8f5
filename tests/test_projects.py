"""app.projects (issue 12, seed 002) on real connections: the plan's
project limit checked at commit under concurrency, and seed 002's worked
invoice (1,000 included projects, $0.10 each over, 1,200 created)."""

from __future__ import annotations

import json

import psycopg

from test_concurrency import SESSIONS, in_parallel


def owner_and_org(conn: psycopg.Connection, email: str) -> tuple[str, str]:
    uid = str(conn.execute("insert into auth.users (email) values (%s) returning id", (email,)).fetchone()[0])
    org = str(conn.execute("select id from tenancy.organizations where personal_owner_id = %s", (uid,)).fetchone()[0])
    return uid, org


def test_eight_sessions_at_the_limit_make_exactly_one_project(dsn: str) -> None:
    """The free plan allows 3 projects; with 2, eight members' inserts at
    once (each through the role switch) end with one new project and seven
    clean refusals at commit."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        uid, org = owner_and_org(conn, "limit@p.test")
        conn.execute("insert into app.projects (organization_id, title) values (%s, 'one'), (%s, 'two')", (org, org))
    claims = json.dumps({"sub": uid, "role": "authenticated"})

    def create(conn: psycopg.Connection, i: int) -> str:
        with conn.transaction():
            conn.execute("select set_config('request.jwt.claims', %s, true), set_config('role', 'authenticated', true)", (claims,))
            conn.execute("insert into app.projects (organization_id, title) values (%s, %s)", (org, f"session {i}"))
        return "created"

    results = in_parallel(dsn, create)
    assert results.count("created") == 1, results
    refusals = [r for r in results if r != "created"]
    assert len(refusals) == SESSIONS - 1
    for r in refusals:
        assert isinstance(r, psycopg.Error) and r.sqlstate == "54000", r
        assert r.diag.message_primary == f"limit max_projects reached: plan free allows 3 projects, organization {org} has 3"
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select count(*) from app.projects where organization_id = %s", (org,)).fetchone()[0] == 3
        assert conn.execute("select quantity from usage.live_counts where organization_id = %s and meter_key = 'projects'",
                            (org,)).fetchone()[0] == 3
        assert conn.execute("select count(*) from usage.events where organization_id = %s and meter_key = 'projects'",
                            (org,)).fetchone()[0] == 3


def test_seed_002_invoice_1200_projects_on_1000_included_is_20_dollars_of_overage(dsn: str) -> None:
    """Seed 002: a plan with 1,000 free projects and $0.10 overage (pro, $20
    a month); 1,200 projects created in the month; $10 of credit. The next
    invoice: subscription $20, usage 200 x $0.10 = $20, credits -$10,
    total $30."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        uid, org = owner_and_org(conn, "seed002@p.test")
        # On pro from the start of the period (the back end's change, no proration).
        conn.execute("update billing.subscriptions set plan_key = 'pro' where organization_id = %s and status <> 'canceled'", (org,))
        claims = json.dumps({"sub": uid, "role": "authenticated"})
        with conn.transaction():
            conn.execute("select set_config('request.jwt.claims', %s, true), set_config('role', 'authenticated', true)", (claims,))
            conn.execute("insert into app.projects (organization_id, title) select %s, 'project ' || g from generate_series(1, 1200) g", (org,))
        access = conn.execute("select public.check_feature_access(%s, 'max_projects', %s)", (uid, org)).fetchone()[0]
        assert (access["limit"], access["used"], access["allowed"], access["overage_unit_price"]) == (1000, 1200, True, 10)
        conn.execute("select * from public.post_credit(%s, 1000, 'USD', 'promo', 'seed002-credit', 'seed 002 credit')", (org,))
        next_period = conn.execute("select (select p.end_date from private.billing_period(%s, now()) p)", (org,)).fetchone()[0]
        invoice = conn.execute("select public.generate_invoice(%s, %s)", (org, next_period)).fetchone()[0]
        lines = conn.execute("select kind, quantity, unit_amount_minor, amount_minor, feature_key from billing.invoice_lines "
                             "where invoice_id = %s order by line_no", (invoice,)).fetchall()
        assert lines == [("subscription", 1, 2000, 2000, None), ("usage", 200, 10, 2000, "max_projects")], lines
        total = conn.execute("select public.finalize_invoice(%s, %s)", (org, invoice)).fetchone()[0]
        assert total == 3000
        assert conn.execute("select amount_minor from billing.invoice_lines where invoice_id = %s and kind = 'credit'",
                            (invoice,)).fetchone()[0] == -1000
        fee = conn.execute("select units_over, unit_price_minor, amount_minor from usage.overage_fees "
                           "where organization_id = %s and feature_key = 'max_projects'", (org,)).fetchone()
        assert fee == (200, 10, 2000)  # seed 002's usage_charges row: units 200, unit_price 10, total_amount 2000
