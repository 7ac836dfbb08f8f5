"""The CRM (seed 004) on real connections: the seed's front-end flows as
PostgREST runs them, the promises that must hold under concurrency, and
the reminder scheduler registered with pg_cron."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from conftest import CRON_DATABASE, HAS_PG_CRON, conninfo
from tenantdb.engine import Engine
from tenantdb.render import Renderer, Target
from test_concurrency import SESSIONS, in_parallel


@contextmanager
def request(conn: psycopg.Connection, user_id: str) -> Iterator[psycopg.Connection]:
    """One PostgREST request of a signed-in user: a transaction with the
    JWT claims and the role switch."""
    with conn.transaction():
        conn.execute("select set_config('request.jwt.claims', %s, true), set_config('role', 'authenticated', true)",
                     (json.dumps({"sub": user_id, "role": "authenticated"}),))
        yield conn


def signup(conn: psycopg.Connection, email: str) -> tuple[str, str]:
    """A user and their personal organization."""
    uid = str(conn.execute("insert into auth.users (email) values (%s) returning id", (email,)).fetchone()[0])
    org = str(conn.execute("select id from tenancy.organizations where personal_owner_id = %s", (uid,)).fetchone()[0])
    return uid, org


def test_the_seeds_front_end_flows_through_the_role_switch(dsn: str) -> None:
    """Seed 004's "Frontend Integration" section, call by call, as a member
    (and the same calls aimed at another organization refused)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        uid, org = signup(conn, "owner@homebase.test")
        _, other_org = signup(conn, "rival@rival.test")
        # Creating a new client: upsert_person, then insert into org_clients.
        with request(conn, uid):
            person = conn.execute("select * from public.upsert_person(p_email => %s, p_phone => %s, p_first_name => %s, p_last_name => %s)",
                                  ("john@example.com", "+15551234567", "John", "Doe")).fetchone()
            assert person[1] is True
            client = conn.execute("insert into crm.org_clients (organization_id, person_id, status) values (%s, %s, 'active') "
                                  "returning id, organization_id, person_id, status", (org, person[0])).fetchone()
            assert (str(client[1]), client[2], client[3]) == (org, person[0], "active")
        with request(conn, uid):
            try:
                conn.execute("insert into crm.org_clients (organization_id, person_id, status) values (%s, %s, 'active')",
                             (other_org, person[0]))
                raise AssertionError("inserted a client into another organization")
            except psycopg.errors.InsufficientPrivilege:
                pass
        # Creating a job with a new client.
        with request(conn, uid):
            service = conn.execute("insert into crm.services (organization_id, name) values (%s, 'Plumbing') returning id", (org,)).fetchone()[0]
            job = conn.execute(
                "select public.create_job_with_optional_new_client(p_organization_id => %s, p_client => %s, p_service_id => %s, "
                "p_start_at => now() + interval '7 days', p_end_at => now() + interval '7 days 2 hours', p_price_cents => 15000, "
                "p_notes => 'First time client')",
                (org, json.dumps({"first_name": "Jane", "last_name": "Smith", "email": "jane@example.com", "phone": "+15559876543",
                                  "address": {"address1": "123 Main St", "city": "San Francisco", "state": "CA", "postal": "94102"}}),
                 service)).fetchone()[0]
            assert job["success"] is True and job["job"]["price_cents"] == 15000 and job["job"]["status"] == "scheduled"
        # Getting the client timeline, newest first.
        with request(conn, uid):
            timeline = conn.execute("select id, type, created_at, data from public.client_timeline(p_org_client_id => %s)",
                                    (job["job"]["org_client_id"],)).fetchall()
            assert [(str(r[0]), r[1]) for r in timeline] == [(job["job"]["id"], "job")]
            assert timeline[0][3]["notes"] == "First time client"
        # Searching clients.
        with request(conn, uid):
            found = conn.execute("select first_name, last_name, primary_email, primary_phone_e164, status from "
                                 "public.search_clients(p_query => 'jane', p_org_id => %s)", (org,)).fetchall()
            assert found == [("Jane", "Smith", "jane@example.com", "+15559876543", "active")]
            stats = conn.execute("select public.client_stats(p_org_id => %s)", (org,)).fetchone()[0]
            assert (stats["total_clients"], stats["active_clients"]) == (2, 2)
        # The rival organization sees none of it.
        rival = conn.execute("select personal_owner_id from tenancy.organizations where id = %s", (other_org,)).fetchone()[0]
        with request(conn, str(rival)):
            assert conn.execute("select count(*) from crm.people").fetchone()[0] == 0
            assert conn.execute("select count(*) from crm.jobs").fetchone()[0] == 0


def test_eight_sessions_upserting_one_new_person_make_one(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        uid, _ = signup(conn, "busy@homebase.test")
    claims = json.dumps({"sub": uid, "role": "authenticated"})

    def upsert(conn: psycopg.Connection, i: int) -> tuple:
        with conn.transaction():
            conn.execute("select set_config('request.jwt.claims', %s, true), set_config('role', 'authenticated', true)", (claims,))
            # The same person, typed differently by each session.
            email = "New.Client@Example.com" if i % 2 else " new.client@example.com"
            return conn.execute("select person_id, is_new from public.upsert_person(%s, %s, 'New', 'Client')",
                                (email, "(555) 010-2000")).fetchone()

    results = in_parallel(dsn, upsert)
    assert all(isinstance(r, tuple) for r in results), results
    assert len({r[0] for r in results}) == 1, results
    assert sorted(r[1] for r in results) == [False] * (SESSIONS - 1) + [True]
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select count(*) from crm.people where primary_email = 'new.client@example.com'").fetchone()[0] == 1
        assert conn.execute("select count(*) from crm.people").fetchone()[0] == 1


def test_reminder_workers_never_claim_the_same_reminder(dsn: str) -> None:
    """Eight workers drain 300 due reminders in small batches: each is
    claimed exactly once, and those of canceled jobs never."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        _, org = signup(conn, "dispatch@homebase.test")
        person = conn.execute("select person_id from public.upsert_person('many@jobs.test')").fetchone()[0]
        client = conn.execute("insert into crm.org_clients (organization_id, person_id) values (%s, %s) returning id", (org, person)).fetchone()[0]
        conn.execute("insert into crm.jobs (organization_id, org_client_id, start_at) "
                     "select %s, %s, now() + interval '1 day' + g * interval '1 minute' from generate_series(1, 160) g", (org, client))
        conn.execute("update crm.jobs set status = 'canceled' where id in (select id from crm.jobs order by start_at limit 10)")
        conn.execute("update crm.reminders set send_at = now() - interval '1 minute'")
        due = conn.execute("select count(*) from crm.reminders where status = 'pending'").fetchone()[0]
        assert due == 300

    def drain(conn: psycopg.Connection, i: int) -> list[str]:
        claimed: list[str] = []
        while True:
            rows = conn.execute("select reminder_id from public.claim_reminders(%s, 7)", (f"worker-{i}",)).fetchall()
            if not rows:
                return claimed
            claimed += [str(r[0]) for r in rows]

    results = in_parallel(dsn, drain)
    assert all(isinstance(r, list) for r in results), results
    claimed = [r for batch in results for r in batch]
    assert len(claimed) == len(set(claimed)) == 300
    assert sum(1 for batch in results if batch) > 1, "one worker took everything: the test proved nothing"
    with psycopg.connect(dsn) as conn:
        canceled = {str(r[0]) for r in conn.execute("select r.id from crm.reminders r join crm.jobs j on j.id = r.job_id "
                                                     "where j.status = 'canceled'").fetchall()}
        assert len(canceled) == 20 and not canceled & set(claimed)


def test_eight_payments_at_once_never_exceed_the_invoice(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        _, org = signup(conn, "cashier@homebase.test")
        person = conn.execute("select person_id from public.upsert_person('payer@jobs.test')").fetchone()[0]
        client = conn.execute("insert into crm.org_clients (organization_id, person_id) values (%s, %s) returning id", (org, person)).fetchone()[0]
        invoice = conn.execute("insert into crm.invoices (organization_id, org_client_id, currency, due_date) values (%s, %s, 'USD', current_date) "
                               "returning id", (org, client)).fetchone()[0]
        conn.execute("insert into crm.invoice_lines (organization_id, invoice_id, description, unit_price_cents) values (%s, %s, 'Job', 10000)",
                     (org, invoice))
        conn.execute("update crm.invoices set status = 'open' where id = %s", (invoice,))

    def pay(conn: psycopg.Connection, i: int) -> str:
        conn.execute("insert into crm.payments (organization_id, invoice_id, currency, amount_cents, status) "
                     "values (%s, %s, 'USD', 3000, 'succeeded')", (org, invoice))
        return "paid"

    results = in_parallel(dsn, pay)
    assert results.count("paid") == 3, results
    assert all(isinstance(r, psycopg.errors.CheckViolation) for r in results if r != "paid"), results
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select ltv_cents from crm.org_clients where id = %s", (client,)).fetchone()[0] == 9000


def test_pg_cron_runs_the_reminder_scheduler_every_15_minutes(postgresql_proc) -> None:
    """Where pg_cron is installed before tenantdb is migrated, the scheduler
    is registered; the job's command runs as written."""
    assert HAS_PG_CRON, "pg_cron is missing: install postgresql-15-cron (scripts/test.sh does)"
    admin = conninfo(postgresql_proc.host, postgresql_proc.port, postgresql_proc.user, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{CRON_DATABASE}" with (force)')
        conn.execute(f'create database "{CRON_DATABASE}"')
    dsn = conninfo(postgresql_proc.host, postgresql_proc.port, postgresql_proc.user, CRON_DATABASE)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("create extension pg_cron")
        Engine(dsn, Renderer(Target()), echo=lambda _line: None).migrate()
        with psycopg.connect(dsn, autocommit=True) as conn:
            jobs = conn.execute("select schedule, command from cron.job where jobname = 'tenantdb-crm-reminders'").fetchall()
            assert jobs == [("*/15 * * * *", "select public.schedule_reminders()")]
            assert conn.execute(jobs[0][1]).fetchone()[0] == 0
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{CRON_DATABASE}" with (force)')
