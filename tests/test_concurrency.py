"""Promises that must hold under concurrency, on real connections: eight
sessions at once, released together by a barrier."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import psycopg

SESSIONS = 8


def in_parallel(dsn: str, work: Callable[[psycopg.Connection, int], object]) -> list[object]:
    """Run work(conn, i) in SESSIONS threads, each on its own connection,
    started together; returns each result or the psycopg error it raised."""
    barrier = threading.Barrier(SESSIONS)
    results: list[object] = [None] * SESSIONS

    def run(i: int) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            barrier.wait(timeout=30)
            try:
                results[i] = work(conn, i)
            except psycopg.Error as exc:
                results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(SESSIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def organization(dsn: str, email: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        uid = conn.execute("insert into auth.users (email) values (%s) returning id", (email,)).fetchone()[0]
        return str(conn.execute("select id from tenancy.organizations where personal_owner_id = %s", (uid,)).fetchone()[0])


def test_one_webhook_delivered_eight_times_is_stored_and_processed_once(dsn: str) -> None:
    org = organization(dsn, "hook@c.test")
    payload = json.dumps({"organization_id": org, "provider_payment_id": "pi_c", "amount_minor": 1200,
                          "currency": "USD", "reason": "topup"})
    stored = in_parallel(dsn, lambda conn, i: conn.execute(
        "select duplicate from public.ingest_payment_event('stripe', 'evt_c', 'payment.succeeded', %s, now())",
        (payload,)).fetchone()[0])
    assert sorted(stored) == [False] + [True] * (SESSIONS - 1)
    processed = in_parallel(dsn, lambda conn, i: conn.execute(
        "select coalesce(array_agg(outcome), '{}') from public.process_payment_events(%s)", (f"worker-{i}",)).fetchone()[0])
    outcomes = [o for r in processed for o in r]
    assert outcomes == ["processed"], processed
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select count(*) from billing.payment_events where provider_event_id = 'evt_c'").fetchone()[0] == 1
        assert conn.execute("select count(*) from billing.payment_event_attempts a join billing.payment_events e on e.id = a.event_id "
                            "where e.provider_event_id = 'evt_c'").fetchone()[0] == 1
        assert conn.execute("select public.credit_balance(%s)", (org,)).fetchone()[0] == 1200


def test_eight_record_usage_calls_with_one_key_count_once(dsn: str) -> None:
    org = organization(dsn, "meter@c.test")
    results = in_parallel(dsn, lambda conn, i: conn.execute(
        "select event_id, duplicate from public.record_usage(%s, 'api_call', 5, 'same-key')", (org,)).fetchone())
    assert all(isinstance(r, tuple) for r in results), results
    assert sorted(d for _, d in results) == [False] + [True] * (SESSIONS - 1)
    assert len({e for e, _ in results}) == 1, "every caller is told the same event id"
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select sum(quantity) from usage.counters where organization_id = %s", (org,)).fetchone()[0] == 5
        assert conn.execute("select count(*) from usage.events where organization_id = %s", (org,)).fetchone()[0] == 1


def test_parallel_credit_spends_never_go_below_zero(dsn: str) -> None:
    org = organization(dsn, "spend@c.test")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("select public.post_credit(%s, 1000, 'USD', 'promo', 'grant', 'Grant')", (org,))
    results = in_parallel(dsn, lambda conn, i: conn.execute(
        "select balance_minor from public.post_credit(%s, -300, 'USD', 'admin', %s, 'Spend')", (org, f"spend-{i}")).fetchone()[0])
    refused = [r for r in results if isinstance(r, psycopg.Error)]
    assert len(refused) == SESSIONS - 3 and all(r.sqlstate == "23514" for r in refused), results
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select public.credit_balance(%s)", (org,)).fetchone()[0] == 100
        assert conn.execute("select min(running) from (select sum(amount_minor) over (order by created_at, id) as running "
                            "from billing.credit_ledger where organization_id = %s) t", (org,)).fetchone()[0] >= 0


def test_parallel_spends_under_repeatable_read_never_go_below_zero(dsn: str) -> None:
    org = organization(dsn, "rr@c.test")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("select public.post_credit(%s, 1000, 'USD', 'promo', 'grant', 'Grant')", (org,))

    def spend(conn: psycopg.Connection, i: int) -> object:
        conn.autocommit = False
        conn.execute("set transaction isolation level repeatable read")
        value = conn.execute("select balance_minor from public.post_credit(%s, -700, 'USD', 'admin', %s, 'Spend')",
                             (org, f"rr-{i}")).fetchone()[0]
        conn.commit()
        return value

    results = in_parallel(dsn, spend)
    succeeded = [r for r in results if not isinstance(r, psycopg.Error)]
    refused = {r.sqlstate for r in results if isinstance(r, psycopg.Error)}
    assert succeeded == [300], results
    assert refused <= {"23514", "40001"}, results
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select public.credit_balance(%s)", (org,)).fetchone()[0] == 300


def test_concurrent_invoice_generation_returns_one_invoice(dsn: str) -> None:
    org = organization(dsn, "inv@c.test")
    results = in_parallel(dsn, lambda conn, i: conn.execute(
        "select public.generate_invoice(%s, (select start_date from private.billing_period(%s, now())))", (org, org)).fetchone()[0])
    assert all(not isinstance(r, psycopg.Error) for r in results), results
    assert len(set(results)) == 1
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select count(*) from billing.invoices where organization_id = %s", (org,)).fetchone()[0] == 1


def test_concurrent_partition_creation_makes_it_once(dsn: str) -> None:
    month = "2031-07-01"
    results = in_parallel(dsn, lambda conn, i: conn.execute("select private.ensure_usage_partition(%s)", (month,)).fetchone()[0])
    assert results == ["events_y2031m07"] * SESSIONS, results


def test_eight_overlapping_usage_batches_record_each_key_once(dsn: str) -> None:
    """Eight sessions send batches sharing 20 keys (each in its own order)
    plus 5 keys of their own: every shared key is recorded once, no session
    deadlocks, and the counters hold exactly the recorded events."""
    org = organization(dsn, "batch@c.test")

    def batch(conn: psycopg.Connection, i: int) -> list[tuple]:
        shared = [{"feature_key": "api_call", "quantity": 2, "idempotency_key": f"shared-{k}"} for k in range(20)]
        shared = shared[i:] + shared[:i]  # every session starts somewhere else
        own = [{"feature_key": "api_call", "quantity": 1, "idempotency_key": f"own-{i}-{k}"} for k in range(5)]
        return conn.execute("select item, idempotency_key, event_id, duplicate from public.record_usage_batch(%s, %s)",
                            (org, json.dumps(shared + own))).fetchall()

    results = in_parallel(dsn, batch)
    assert all(isinstance(r, list) and len(r) == 25 for r in results), results
    fresh_shared = sum(1 for r in results for item, _, _, dup in r if item <= 20 and not dup)
    assert fresh_shared == 20, "each shared key is new for exactly one session"
    assert all(not dup for r in results for item, _, _, dup in r if item > 20), "own keys are never duplicates"
    told: dict[str, set] = {}
    for r in results:
        for _, key, event_id, _ in r:
            told.setdefault(key, set()).add(event_id)
    assert all(len(ids) == 1 for ids in told.values()), "every session is told the same event id for a key"
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select count(*) from usage.events where organization_id = %s", (org,)).fetchone()[0] == 20 + 8 * 5
        assert conn.execute("select sum(quantity) from usage.counters where organization_id = %s", (org,)).fetchone()[0] == 20 * 2 + 8 * 5
