"""Production operations: a migration lock that no interrupted run can wedge,
the CLI refusing a transaction pooler (and leaving nothing on one), no data
dropped without consent (rollback, destructive changes, reset), a read-only
database, and verify noticing seed-owned rows that a rollback took away."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from conftest import ROOT, conninfo
from tenantdb import devdb
from tenantdb.engine import LOCK_KEY
from tenantdb.paths import SQL_DIRS
from tenantdb.render import Renderer, Target

CLI = [sys.executable, str(ROOT / "cli.py")]
CHANGE_IDS = [c.id for c in Renderer(Target()).changes()]


def run(*args: str, input: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=300, input=input,
                          env={**os.environ, **(env or {})})


def scalar(dsn: str, query: str, params: tuple = ()) -> object:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(query, params).fetchone()[0]


def advisory_locks(dsn: str) -> int:
    """Sessions holding tenantdb's migration lock, seen from a direct connection."""
    return scalar(dsn, "select count(*) from pg_locks where locktype = 'advisory' "
                       "and (classid::bigint << 32 | objid::bigint) = %s", (LOCK_KEY,))


@pytest.fixture
def sql_copy(tmp_path: Path) -> Path:
    for d in SQL_DIRS:
        shutil.copytree(ROOT / d, tmp_path / d)
    return tmp_path


# -- 1. a migration lock that cannot wedge ------------------------------------

def test_a_stale_yoyo_lock_row_is_cleared_not_waited_for(empty_db: str) -> None:
    """A row an earlier release's killed first migrate left in yoyo's lock
    table used to make every later migrate wait and fail (LockTimeout, run
    yoyo break-lock)."""
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute("create schema tenantdb")
        conn.execute("create table tenantdb.yoyo_lock (locked int default 1, ctime timestamp, pid int not null, "
                     "primary key (locked))")
        conn.execute("insert into tenantdb.yoyo_lock values (1, now(), 999999)")
    started = time.monotonic()
    proc = run("--dsn", empty_db, "migrate", "--lock-timeout", "3", "--to", "0002_identity")
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 20
    assert "cleared a stale row of tenantdb.yoyo_lock (process 999999" in proc.stdout
    assert scalar(empty_db, "select count(*) from tenantdb.yoyo_lock") == 0
    assert scalar(empty_db, "select count(*) from tenantdb.changes") == 2


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_a_first_migrate_killed_anywhere_never_wedges_the_next(empty_db: str, sig: signal.Signals) -> None:
    """Kill the CLI at points spread over a database's first migrate (its
    setup included: the first tenth of a second after the connection), then
    run migrate again each time: it never waits for a lock, and the last run
    finishes the job."""
    for delay in (0.25, 0.3, 0.35, 0.4, 0.5, 0.7, 1.0, 1.5):
        proc = subprocess.Popen(CLI + ["--dsn", empty_db, "migrate"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        time.sleep(delay)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
        assert "Traceback" not in err
        deadline = time.monotonic() + 10  # the server ends the killed session's transaction as soon as it sees it gone
        while advisory_locks(empty_db) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert advisory_locks(empty_db) == 0, f"a lock outlived the run killed after {delay}s"
    proc = run("--dsn", empty_db, "migrate", "--lock-timeout", "2")
    assert proc.returncode == 0, proc.stderr
    assert scalar(empty_db, "select count(*) from tenantdb.changes") == len(CHANGE_IDS)
    assert run("--dsn", empty_db, "status").stdout.count("applied  ") == len(CHANGE_IDS)


def test_a_terminated_lock_session_ends_its_run_and_no_two_runs_overlap(empty_db: str) -> None:
    """The lock is held by the session that applies the change: terminating
    it ends that change's transaction (nothing half done), and a second run
    applies each change once."""
    proc = subprocess.Popen(CLI + ["--dsn", empty_db, "migrate"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    killed = False
    while time.monotonic() < deadline and proc.poll() is None and not killed:
        with psycopg.connect(empty_db, autocommit=True) as conn:
            killed = bool(conn.execute(
                "select pg_terminate_backend(pid) from pg_locks where locktype = 'advisory' "
                "and (classid::bigint << 32 | objid::bigint) = %s and granted", (LOCK_KEY,)).fetchall())
        time.sleep(0.01)
    out, err = proc.communicate(timeout=60)
    assert killed, "the run never held the lock while it was watched"
    assert proc.returncode != 0 and "Traceback" not in err
    done = 0 if scalar(empty_db, "select to_regclass('tenantdb.changes') is null") else \
        scalar(empty_db, "select count(*) from tenantdb.changes")
    assert done < len(CHANGE_IDS)
    again = run("--dsn", empty_db, "migrate", "--lock-timeout", "5")
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("\napplied ") + again.stdout.startswith("applied ") == len(CHANGE_IDS) - done
    assert scalar(empty_db, "select count(*) from tenantdb.changes") == len(CHANGE_IDS)


# -- 2. a transaction pooler ---------------------------------------------------

def test_migrate_through_a_transaction_pooler_is_refused_and_leaves_nothing(empty_db: str, pgbouncer) -> None:
    pooled = pgbouncer.reroute(empty_db)
    for args in (["migrate"], ["rollback", "--all", "--yes"]):
        proc = run("--dsn", pooled, *args, "--lock-timeout", "3")
        assert proc.returncode == 3, (args, proc.stdout, proc.stderr)
        assert "connection pooler in transaction mode" in proc.stderr and "session" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    assert scalar(empty_db, "select to_regnamespace('tenantdb') is null"), "nothing was created"
    assert advisory_locks(empty_db) == 0
    # nothing left on the pooled server connections: their settings are the server's defaults
    with psycopg.connect(pooled, autocommit=True, prepare_threshold=None) as conn:
        assert conn.execute("select current_setting('lock_timeout'), current_setting('search_path')").fetchone() == \
            ("0", '"$user", public')


def test_a_run_whose_session_moves_midway_stops_cleanly(empty_db: str, pgbouncer, monkeypatch) -> None:
    """Were the up-front check missed (a pooler that shows nothing at first),
    the run notices the first transaction served by another server session
    and stops there: every change it committed is whole, nothing is left
    locked, and a direct migrate finishes the job."""
    from tenantdb import pooling
    from tenantdb.engine import Engine
    from tenantdb.errors import PooledConnection

    pooled = pgbouncer.reroute(empty_db)
    monkeypatch.setattr(pooling, "refuse_transaction_pooler", lambda dsn: None)
    stop = threading.Event()

    def traffic() -> None:  # other clients keep the pool's four server connections busy in turn
        with psycopg.connect(pooled, autocommit=True, prepare_threshold=None) as conn:
            while not stop.is_set():
                with conn.transaction():
                    conn.execute("select pg_sleep(0.002)")

    threads = [threading.Thread(target=traffic) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        with pytest.raises(PooledConnection) as err:
            Engine(pooled, Renderer(Target()), echo=lambda _l: None, lock_timeout=10).migrate()
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert "moved from server session" in str(err.value) and "session connection" in str(err.value)
    assert advisory_locks(empty_db) == 0
    done = scalar(empty_db, "select count(*) from tenantdb.changes")
    assert done < len(CHANGE_IDS)
    assert scalar(empty_db, "select count(*) from tenantdb._yoyo_migration") == done, "each committed change is whole"
    assert run("--dsn", empty_db, "migrate").returncode == 0
    assert scalar(empty_db, "select count(*) from tenantdb.changes") == len(CHANGE_IDS)


def test_migrate_through_a_session_pooler_works(empty_db: str, pgbouncer) -> None:
    pooled = pgbouncer.with_mode("session").reroute(empty_db)
    proc = run("--dsn", pooled, "migrate", "--to", "0003_iam")
    assert proc.returncode == 0, proc.stderr
    assert scalar(empty_db, "select count(*) from tenantdb.changes") == 3
    assert advisory_locks(empty_db) == 0


# -- 3. nothing destroyed without consent --------------------------------------

def _user_with_projects(dsn: str, email: str, descriptions: list[str | None]) -> str:
    """A user (with a personal organization) and one project per description."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        uid = conn.execute("insert into auth.users (email) values (%s) returning id", (email,)).fetchone()[0]
        org = conn.execute("select id from tenancy.organizations where personal_owner_id = %s", (uid,)).fetchone()[0]
        for i, text in enumerate(descriptions):
            conn.execute("insert into app.projects (organization_id, title, description) values (%s, %s, %s)",
                         (org, f"p{i}", text))
        return str(org)


def test_rollback_that_drops_rows_lists_them_and_needs_yes(dsn: str) -> None:
    _user_with_projects(dsn, "keep@ops.test", ["kept"])
    before = scalar(dsn, "select count(*) from tenantdb.changes")
    proc = run("--dsn", dsn, "rollback", "--to", "0012_limits")
    assert proc.returncode == 6, proc.stderr
    assert "would drop data" in proc.stderr and "--yes" in proc.stderr and "Traceback" not in proc.stderr
    assert "app.projects (1 row)" in proc.stderr, proc.stderr
    aliases = scalar(dsn, "select count(*) from catalog.meter_aliases")
    counted = f"catalog.meter_aliases ({aliases} row{'s' if aliases != 1 else ''})"
    assert aliases > 0 and counted in proc.stderr, proc.stderr
    values = scalar(dsn, "select count(*) from catalog.meters where aggregation is not null")
    assert f"catalog.meters.aggregation ({values} values)" in proc.stderr, "a dropped column holding values is listed"
    assert scalar(dsn, "select count(*) from tenantdb.changes") == before, "nothing was reverted"
    assert scalar(dsn, "select count(*) from app.projects") == 1
    assert "revert" not in proc.stdout, "a refused rollback does not say it reverted anything"
    # --json: the same refusal, exit 6
    assert run("--dsn", dsn, "rollback", "--to", "0012_limits", "--json").returncode == 6
    # at a terminal the question is asked: here, stdin is not one, so it is never asked
    assert "drop it?" not in proc.stderr
    proc = run("--dsn", dsn, "rollback", "--to", "0012_limits", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert "dropped app.projects (1 row)" in proc.stdout and f"dropped {counted}" in proc.stdout
    assert proc.stdout.count("reverted 0018_crm_trust") == 1 and "reverted 0013_crm" in proc.stdout
    assert scalar(dsn, "select to_regclass('app.projects') is null and to_regclass('crm.people') is null")


def test_rollback_dropping_only_empty_tables_asks_nothing(empty_db: str) -> None:
    assert run("--dsn", empty_db, "migrate", "--to", "0004_tenancy").returncode == 0
    proc = run("--dsn", empty_db, "rollback")
    assert proc.returncode == 0, proc.stderr
    assert "reverted 0004_tenancy" in proc.stdout and "dropped" not in proc.stdout


def _destructive_change(sql_copy: Path, marked: bool) -> None:
    marker = "-- tenantdb: destructive\n" if marked else ""
    (sql_copy / "migrations" / "0099_no_descriptions.sql").write_text(
        f"{marker}-- Projects lose their description.\nalter table app.projects drop column description;\n")
    (sql_copy / "migrations" / "0099_no_descriptions.rollback.sql").write_text(
        "alter table app.projects add column description text;\n")


def test_a_change_marked_destructive_shows_what_it_drops_and_needs_yes(dsn: str, sql_copy: Path) -> None:
    _user_with_projects(dsn, "d@ops.test", ["one", None, "three"])
    _destructive_change(sql_copy, marked=True)
    proc = run("--dsn", dsn, "--sql-dir", str(sql_copy), "migrate")
    assert proc.returncode == 6, proc.stderr
    assert "0099_no_descriptions (marked destructive) would drop data" in proc.stderr
    assert "app.projects.description (2 values)" in proc.stderr, proc.stderr
    assert scalar(dsn, "select count(*) from app.projects where description is not null") == 2, "nothing was dropped"
    assert scalar(dsn, "select count(*) from tenantdb.changes where change_id = '0099_no_descriptions'") == 0
    proc = run("--dsn", dsn, "--sql-dir", str(sql_copy), "migrate", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert "0099_no_descriptions dropped app.projects.description (2 values)" in proc.stdout
    assert scalar(dsn, "select count(*) from information_schema.columns where table_schema = 'app' "
                       "and table_name = 'projects' and column_name = 'description'") == 0


def test_a_destructive_change_dropping_a_partition_with_rows_needs_yes(dsn: str, sql_copy: Path) -> None:
    """A partition is a table of its own: dropping one that holds rows is
    data lost, though its parent stays."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("create table app.logbook (at date not null, line text) partition by range (at)")
        conn.execute("create table app.logbook_2024 partition of app.logbook for values from ('2024-01-01') to ('2025-01-01')")
        conn.execute("create table app.logbook_2025 partition of app.logbook for values from ('2025-01-01') to ('2026-01-01')")
        conn.execute("insert into app.logbook select date '2024-01-01' + g % 300, 'x' from generate_series(0, 499) g")
        conn.execute("insert into app.logbook values ('2025-03-01', 'kept')")
    (sql_copy / "migrations" / "0099_old_logs.sql").write_text("-- tenantdb: destructive\ndrop table app.logbook_2024;\n")
    (sql_copy / "migrations" / "0099_old_logs.rollback.sql").write_text("select 1;\n")
    proc = run("--dsn", dsn, "--sql-dir", str(sql_copy), "migrate")
    assert proc.returncode == 6, proc.stderr
    assert "app.logbook_2024 (500 rows)" in proc.stderr, proc.stderr
    assert scalar(dsn, "select count(*) from app.logbook") == 501, "nothing was dropped"
    proc = run("--dsn", dsn, "--sql-dir", str(sql_copy), "migrate", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert scalar(dsn, "select count(*) from app.logbook") == 1


def test_rows_that_row_security_hides_from_the_migrator_count_as_data(dsn: str) -> None:
    """A role that row security binds cannot see whether a table holds rows:
    the check refuses to call such a table empty, and leaves alone the
    tables it cannot read but does not drop."""
    from tenantdb import dataloss
    from tenantdb.errors import DataLoss

    role = f"migrator_{os.getpid()}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"create role {role} login nobypassrls")
        conn.execute(f"grant create, usage on schema app to {role}")
    try:
        with psycopg.connect(dsn + f" user={role}") as conn:
            conn.execute("create table app.hidden (id int)")
            conn.execute("alter table app.hidden enable row level security")
            conn.execute("alter table app.hidden force row level security")
            conn.execute("create policy none_seen on app.hidden using (false) with check (true)")
            conn.execute("insert into app.hidden values (1)")
            assert conn.execute("select count(*) from app.hidden").fetchone()[0] == 0, "the role sees none of its rows"
            with pytest.raises(DataLoss) as err:
                dataloss.guarded(conn, lambda: conn.execute("drop table app.hidden"), "probe", allow=False)
            assert "app.hidden (rows not counted: row security or privileges hide them from this role)" in str(err.value)
            conn.rollback()
            assert dataloss.guarded(conn, lambda: conn.execute("select 1"), "probe", allow=False) == []
            assert conn.execute("select current_setting('row_security')").fetchone()[0] == "on", "left as it was"
            conn.rollback()
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("drop table if exists app.hidden")
            conn.execute(f"drop owned by {role}")
            conn.execute(f"drop role {role}")


def test_reset_refuses_a_database_migrated_for_supabase(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("comment on database {} is {}").format(sql.Identifier(conn.info.dbname), sql.Literal(devdb.MARK)))
        conn.execute("update tenantdb.changes set target = 'supabase'")  # as a database migrated with --target supabase
    proc = run("--dsn", dsn, "reset", "--force", "--yes")
    assert proc.returncode == 2 and "supabase db reset" in proc.stderr, proc.stderr
    assert scalar(dsn, "select count(*) from tenantdb.changes") == len(CHANGE_IDS), "nothing dropped"


def test_a_destructive_change_with_nothing_to_lose_applies_without_asking(dsn: str, sql_copy: Path) -> None:
    _user_with_projects(dsn, "e@ops.test", [None])
    _destructive_change(sql_copy, marked=True)
    proc = run("--dsn", dsn, "--sql-dir", str(sql_copy), "migrate")
    assert proc.returncode == 0, proc.stderr
    assert "dropped" not in proc.stdout


def test_reset_refuses_a_database_tenantdb_did_not_make(postgresql_proc, empty_db_factory) -> None:
    """A database named production holding data: reset --yes refuses it
    (exit 6, naming host and port) and drops nothing; --force resets it, and
    the database reset made is marked, so the next reset needs no --force."""
    production = empty_db_factory()
    with psycopg.connect(production, autocommit=True) as conn:
        conn.execute("create table public.orders (id int primary key)")
        conn.execute("insert into public.orders values (1), (2)")
    where = f"{postgresql_proc.host}:{postgresql_proc.port}"
    proc = run("--dsn", production, "reset", "--yes")
    assert proc.returncode == 6, proc.stderr
    assert "was not made by tenantdb for development" in proc.stderr and where in proc.stderr and "--force" in proc.stderr
    assert scalar(production, "select count(*) from public.orders") == 2
    # the question names host, port and database
    proc = run("--dsn", production, "reset", "--force", input="n\n")
    assert proc.returncode != 0
    name = scalar(production, "select current_database()")
    assert f"drop database {name} on {where} with all its data" in proc.stdout + proc.stderr
    assert scalar(production, "select count(*) from public.orders") == 2
    proc = run("--dsn", production, "reset", "--force", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert scalar(production, "select to_regclass('public.orders') is null")
    proc = run("--dsn", production, "reset", "--yes")
    assert proc.returncode == 0, proc.stderr


# -- 4. a read-only database ---------------------------------------------------

def read_only(dsn: str) -> None:
    """Make the database read-only for every new session."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("alter database {} set default_transaction_read_only = on").format(
            sql.Identifier(conn.info.dbname)))


def test_migrate_on_a_read_only_database(dsn: str) -> None:
    read_only(dsn)
    proc = run("--dsn", dsn, "migrate")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("nothing to apply")
    proc = run("--dsn", dsn, "rollback", "--yes")
    assert proc.returncode == 1 and "SQLSTATE 25006" in proc.stderr and "unexpected" not in proc.stderr, proc.stderr


def test_migrate_with_work_to_do_on_a_read_only_database_says_so(empty_db: str) -> None:
    read_only(empty_db)
    proc = run("--dsn", empty_db, "migrate")
    assert proc.returncode == 1, proc.stderr
    assert "SQLSTATE 25006" in proc.stderr and "read-only" in proc.stderr and "unexpected" not in proc.stderr


# -- 5. seed-owned rows that a rollback took away ------------------------------

def test_verify_fails_when_seed_owned_rows_are_missing(dsn: str) -> None:
    assert run("--dsn", dsn, "verify").returncode == 0
    assert run("--dsn", dsn, "rollback", "--to", "0014_projects", "--yes").returncode == 0  # before the meter aliases
    assert run("--dsn", dsn, "migrate").returncode == 0
    proc = run("--dsn", dsn, "verify")
    assert proc.returncode == 1, proc.stdout
    assert "catalog.meter_aliases" in proc.stdout and "tenantdb seed" in proc.stdout, proc.stdout
    assert run("--dsn", dsn, "seed").returncode == 0
    proc = run("--dsn", dsn, "verify")
    assert proc.returncode == 0, proc.stdout
