"""Usage ingest: one row written per usage event, keys still accepted once.

A usage event claims its idempotency key through its monthly partition's
unique index; keys of events older than the register's horizon are in
usage.idempotency_keys (moved there by register_usage_keys); the other
partitions since the horizon are probed. usage.events has no foreign keys
any more: the organization's usage lock and a trigger on its deletion take
their place, and a meter with recorded usage keeps its key.
"""

from __future__ import annotations

import json
import threading

import psycopg
import pytest


def member(conn: psycopg.Connection, email: str) -> tuple[str, str]:
    uid = str(conn.execute("insert into auth.users (email) values (%s) returning id", (email,)).fetchone()[0])
    org = str(conn.execute("select id from tenancy.organizations where personal_owner_id = %s", (uid,)).fetchone()[0])
    return uid, org


def as_member(conn: psycopg.Connection, uid: str) -> None:
    conn.execute("select set_config('request.jwt.claims', %s, true), set_config('role', 'authenticated', true)",
                 (json.dumps({"sub": uid, "role": "authenticated"}),))


def record(conn: psycopg.Connection, uid: str, org: str, key: str, at: str = "now()") -> tuple[str, bool]:
    with conn.transaction():
        as_member(conn, uid)
        row = conn.execute(f"select event_id, duplicate from public.record_usage(%s, 'api_call', 1, %s, {at})", (org, key)).fetchone()
    return str(row[0]), row[1]


@pytest.fixture
def conn(dsn: str):
    with psycopg.connect(dsn, autocommit=True) as c:
        yield c


def test_an_event_writes_one_row_and_its_counter(conn: psycopg.Connection) -> None:
    """The ingestion problem, as rows: record_usage used to write the key's
    register row, the event and the counter; now the event and the counter."""
    uid, org = member(conn, "one-row@ingest.test")
    counts = "select relname, n_tup_ins from pg_stat_xact_user_tables where schemaname = 'usage'"
    with conn.transaction():
        before = dict(conn.execute(counts).fetchall())  # the counts still pending from the setup's transactions
        as_member(conn, uid)
        conn.execute("select * from public.record_usage(%s, 'api_call', 1, 'one-row-1')", (org,))
        conn.execute("reset role")
        inserted = {name: n - before.get(name, 0) for name, n in conn.execute(counts).fetchall() if n > before.get(name, 0)}
    partition = conn.execute("select format('events_y%s', to_char(now() at time zone 'UTC', 'YYYY\"m\"MM'))").fetchone()[0]
    assert inserted == {partition: 1, "counters": 1}, inserted


def test_a_key_from_the_previous_month_is_a_replay_this_month(conn: psycopg.Connection) -> None:
    """The partition's unique index sees only its month: the key of an event
    that occurred last month is found in last month's partition."""
    uid, org = member(conn, "months@ingest.test")
    last_month = "date_trunc('month', now()) - interval '10 days'"
    first, dup = record(conn, uid, org, "cross-month", last_month)
    assert dup is False
    again, dup = record(conn, uid, org, "cross-month")
    assert (again, dup) == (first, True)
    batch = conn.execute(
        "select event_id, duplicate from public.record_usage_batch(%s, %s)",
        (org, json.dumps([{"meter_key": "api_call", "quantity": 1, "idempotency_key": "cross-month"}]))).fetchall()
    assert [(str(e), d) for e, d in batch] == [(first, True)]
    assert conn.execute("select count(*) from usage.events where organization_id = %s and idempotency_key = 'cross-month'",
                        (org,)).fetchone()[0] == 1


def test_the_register_answers_for_events_past_its_horizon(conn: psycopg.Connection) -> None:
    """An event of four months ago (written as the back end's import would,
    past record_usage's window) is registered by register_usage_keys, which
    moves the horizon past it; its key is still a replay afterwards."""
    uid, org = member(conn, "register@ingest.test")
    old = conn.execute("select date_trunc('month', now()) - interval '4 months' + interval '3 days'").fetchone()[0]
    conn.execute("select private.ensure_usage_partition(%s::date)", (old,))
    event = str(conn.execute("insert into usage.events (organization_id, meter_key, quantity, idempotency_key, occurred_at) "
                             "values (%s, 'api_call', 1, 'ancient', %s) returning id", (org, old)).fetchone()[0])
    conn.execute("insert into private.usage_key_horizon (registered_before) values (%s - interval '1 day') "
                 "on conflict (one_row) do update set registered_before = excluded.registered_before", (old,))
    assert record(conn, uid, org, "ancient") == (event, True)  # found in its partition: the horizon is before it
    with conn.transaction():
        conn.execute("select set_config('role', 'service_role', true)")
        copied = conn.execute("select public.register_usage_keys()").fetchone()[0]
    assert copied >= 1
    horizon = conn.execute("select registered_before from private.usage_key_horizon").fetchone()[0]
    assert horizon > old
    assert conn.execute("select event_id from usage.idempotency_keys where organization_id = %s and idempotency_key = 'ancient'",
                        (org,)).fetchone()[0] is not None
    assert record(conn, uid, org, "ancient") == (event, True)  # found in the register
    with conn.transaction():
        conn.execute("select set_config('role', 'service_role', true)")
        assert conn.execute("select public.register_usage_keys()").fetchone()[0] == 0  # nothing left to move
    with pytest.raises(psycopg.Error) as refused, conn.transaction():
        as_member(conn, uid)
        conn.execute("select public.register_usage_keys()")
    assert refused.value.sqlstate == "42501"


def test_usage_for_an_organization_that_does_not_exist_is_refused(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.Error) as refused, conn.transaction():
        conn.execute("select set_config('role', 'service_role', true)")
        conn.execute("select * from public.record_usage(gen_random_uuid(), 'api_call', 1, 'nobody')")
    assert refused.value.sqlstate == "23503"
    with pytest.raises(psycopg.Error) as refused, conn.transaction():
        conn.execute("select set_config('role', 'service_role', true)")
        conn.execute("select * from public.record_usage_batch(gen_random_uuid(), %s)",
                     (json.dumps([{"meter_key": "api_call", "quantity": 1, "idempotency_key": "nobody"}]),))
    assert refused.value.sqlstate == "23503"


def test_deleting_an_organization_waits_for_its_usage_in_flight_and_deletes_it(conn: psycopg.Connection, dsn: str) -> None:
    """What the foreign key's cascade did: a usage write in flight holds the
    organization; its deletion waits for the write to commit, then deletes
    that event with the others."""
    uid, org = member(conn, "deleted@ingest.test")
    record(conn, uid, org, "before-delete")
    writer = psycopg.connect(dsn)
    deleter_done = threading.Event()
    failure: list[BaseException] = []
    try:
        as_member(writer, uid)
        writer.execute("select * from public.record_usage(%s, 'api_call', 1, 'in-flight')", (org,))

        def delete() -> None:
            try:
                with psycopg.connect(dsn, autocommit=True) as c:
                    c.execute("delete from tenancy.organizations where id = %s", (org,))
            except BaseException as exc:  # reported below
                failure.append(exc)
            deleter_done.set()

        thread = threading.Thread(target=delete)
        thread.start()
        assert not deleter_done.wait(1.0), "the deletion did not wait for the usage write in flight"
        writer.commit()
        thread.join(30)
    finally:
        writer.close()
    assert not failure, failure
    assert conn.execute("select count(*) from usage.events where organization_id = %s", (org,)).fetchone()[0] == 0


def test_a_meter_with_recorded_usage_keeps_its_key(conn: psycopg.Connection) -> None:
    uid, org = member(conn, "rename@ingest.test")
    record(conn, uid, org, "rename-1")
    with pytest.raises(psycopg.Error) as refused:
        conn.execute("update catalog.meters set key = 'api_calls_renamed' where key = 'api_call'")
    assert refused.value.sqlstate == "55000"
    assert "api_call has recorded usage" in refused.value.diag.message_primary


def test_two_batches_of_the_same_new_users_in_other_orders_never_deadlock(conn: psycopg.Connection, dsn: str) -> None:
    """Monthly active users (unique_count): two sessions record the same 40
    new users per round, each in its own shuffled order, 60 rounds at once.
    Every batch locks the users' rows in one order (meter, value, item), so
    none is chosen as a deadlock victim (40P01) and every user counts once."""
    uid, org = member(conn, "order@ingest.test")
    conn.execute("update billing.subscriptions set plan_key = 'enterprise' where organization_id = %s and status <> 'canceled'", (org,))
    barrier = threading.Barrier(2)
    errors: list[str] = []

    def session(n: int) -> None:
        shuffle = __import__("random").Random(n).shuffle
        with psycopg.connect(dsn, autocommit=True) as c:
            for r in range(60):
                users = [f"r{r}-user{i}" for i in range(40)]
                shuffle(users)
                batch = [{"meter_key": "user_active", "quantity": 1, "idempotency_key": f"order-{n}-{r}-{i}",
                          "metadata": {"user_id": u}} for i, u in enumerate(users)]
                barrier.wait(timeout=30)
                try:
                    with c.transaction():
                        c.execute("select set_config('role', 'service_role', true)")
                        c.execute("select count(*) from public.record_usage_batch(%s, %s)", (org, json.dumps(batch)))
                except psycopg.Error as exc:
                    errors.append(f"{exc.sqlstate}: {exc.diag.message_primary}")

    threads = [threading.Thread(target=session, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert conn.execute("select count(*) from usage.unique_values where organization_id = %s and meter_key = 'user_active'",
                        (org,)).fetchone()[0] == 60 * 40
