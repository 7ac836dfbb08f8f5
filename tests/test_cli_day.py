"""The DBA's day with the CLI (issue 11): options where a user types them,
machine-readable results, checks before changing anything, and errors
that name the real cause."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from conftest import ROOT
from tenantdb import devdb
from tenantdb.engine import LOCK_KEY
from tenantdb.paths import SQL_DIRS
from tenantdb.render import Renderer, Target

CLI = [sys.executable, str(ROOT / "cli.py")]
CHANGE_IDS = [c.id for c in Renderer(Target()).changes()]
# `tenantdb new migration` numbers one after the highest number (the
# numbers may have gaps), not one after the count of migrations.
NEXT_NUMBER = f"{max(int(c[:4]) for c in CHANGE_IDS) + 1:04d}"


def run(*args: str, cwd: Path = ROOT, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + list(args), capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


def scalar(dsn: str, query: str) -> object:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query).fetchone()[0]


@pytest.fixture
def sql_copy(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    for d in SQL_DIRS:
        shutil.copytree(ROOT / d, project / d)
    return project


def test_options_after_the_subcommand(empty_db: str) -> None:
    proc = run("migrate", "--dsn", empty_db, "--to", "0002_identity")
    assert proc.returncode == 0, proc.stderr
    assert scalar(empty_db, "select count(*) from tenantdb.changes") == 2
    rendered = run("render", "--target", "supabase")
    assert rendered.returncode == 0 and "create table" in rendered.stdout
    assert "create or replace function auth.uid()" not in rendered.stdout, "the supabase target uses Supabase's auth"
    assert "create or replace function auth.uid()" in run("render").stdout or "auth.uid" in run("render").stdout


def test_version() -> None:
    from tenantdb import __version__

    proc = run("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"tenantdb, version {__version__}"


def test_json_results_of_migrate_status_seed(empty_db: str) -> None:
    migrated = run("migrate", "--dsn", empty_db, "--json")
    assert migrated.returncode == 0, migrated.stderr
    result = json.loads(migrated.stdout)
    assert [a["change"] for a in result["applied"]] == CHANGE_IDS and result["count"] == len(CHANGE_IDS)
    assert all(isinstance(a["duration_ms"], int) for a in result["applied"])
    assert "applying 0001_foundation ..." in migrated.stderr, "progress goes to stderr under --json"
    status = json.loads(run("status", "--dsn", empty_db, "--json").stdout)
    assert status["clean"] is True and status["sql_source"] == "project"
    recorded = dict(psycopg.connect(empty_db).execute("select change_id, duration_ms from tenantdb.changes").fetchall())
    assert {c["change"]: c["duration_ms"] for c in status["changes"]} == recorded
    assert all(c["state"] == "applied" and c["applied_at"].endswith("Z") for c in status["changes"])
    text = run("status", "--dsn", empty_db).stdout.splitlines()
    assert text[2].startswith("applied  0001_foundation  ") and text[2].endswith(f" {recorded['0001_foundation']} ms")
    seeded = json.loads(run("seed", "--dsn", empty_db, "--json").stdout)
    assert seeded["seeded"][0]["seed"].endswith("catalog.json") and seeded["seeded"][0]["written"]["plans"] >= 1


def test_malformed_dsn_is_a_usage_error_showing_the_form() -> None:
    proc = run("status", "--dsn", "host=localhost port=5432 nonsense")
    assert proc.returncode == 2 and "expected postgresql://" in proc.stderr and "Traceback" not in proc.stderr
    uri = run("status", "--dsn", "postgresql://app:s3cret@[::1:5432/db")
    assert uri.returncode == 2 and "s3cret" not in uri.stderr, "the message does not echo the password"
    bad_value = run("status", "--dsn", "host=127.0.0.1 port=1 dbname=x sslmode=bogus")
    assert bad_value.returncode == 2 and "sslmode" in bad_value.stderr


def test_pgconnect_timeout_is_honoured(tmp_path: Path) -> None:
    """A server that accepts and never answers: libpq gives up after
    PGCONNECT_TIMEOUT seconds (exit 3), not the default 10."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    try:
        started = time.monotonic()
        proc = run("status", "--dsn", f"host=127.0.0.1 port={port} dbname=x user=x", env=dict(os.environ, PGCONNECT_TIMEOUT="2"))
        elapsed = time.monotonic() - started
    finally:
        listener.close()
    assert proc.returncode == 3, proc.stderr
    assert elapsed < 8, f"waited {elapsed:.1f}s"


def test_dsn_from_dotenv(empty_db: str, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"# the app's settings\nexport DATABASE_URL='{empty_db}'\n")
    proc = run("status", "--sql-dir", str(ROOT), cwd=tmp_path, env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[2] == "pending  0001_foundation"


def test_the_checkout_sql_is_used_and_new_migration_is_seen(empty_db: str, sql_copy: Path) -> None:
    assert run("migrate", "--dsn", empty_db, cwd=sql_copy).returncode == 0
    made = run("new", "migration", "add_bookings", cwd=sql_copy)
    assert made.returncode == 0, made.stderr
    number = NEXT_NUMBER
    forward = sql_copy / "migrations" / f"{number}_add_bookings.sql"
    assert forward.is_file() and (sql_copy / "migrations" / f"{number}_add_bookings.rollback.sql").is_file()
    forward.write_text(forward.read_text() + "create table app.bookings (id uuid primary key);\n")
    (sql_copy / "migrations" / f"{number}_add_bookings.rollback.sql").write_text("drop table app.bookings;\n")
    function = run("new", "function", "bookings", cwd=sql_copy / "migrations")  # from a subdirectory too
    assert function.returncode == 0 and (sql_copy / "functions" / f"{number}_bookings.sql").is_file()
    assert run("new", "policy", "bookings", cwd=sql_copy).returncode == 0, "the policy template renders (its example is a jinja comment)"
    again = run("new", "migration", "add_bookings", cwd=sql_copy)
    assert again.returncode == 2 and "exists already" in again.stderr
    status = run("status", "--dsn", empty_db, cwd=sql_copy)
    assert status.stdout.splitlines()[1] == f"SQL from {sql_copy} (the project checkout)"
    assert f"pending  {number}_add_bookings" in status.stdout
    assert run("migrate", "--dsn", empty_db, cwd=sql_copy).returncode == 0
    assert scalar(empty_db, "select to_regclass('app.bookings') is not null") is True
    refused = run("new", "migration", "Bad Name", cwd=sql_copy)
    assert refused.returncode == 2 and "lower-case" in refused.stderr


def test_dry_run_refuses_as_migrate_does(empty_db: str, sql_copy: Path) -> None:
    assert run("migrate", "--dsn", empty_db, "--to", "0002_identity", cwd=sql_copy).returncode == 0
    path = sql_copy / "migrations" / "0002_identity.sql"
    path.write_text(path.read_text() + "\n-- edited\n")
    for args in (["migrate"], ["migrate", "--dry-run"]):
        proc = run(*args, "--dsn", empty_db, cwd=sql_copy)
        assert proc.returncode == 5 and "edited" in proc.stderr, (args, proc.stderr)


def test_another_api_schema_is_named_as_the_cause(dsn: str) -> None:
    proc = run("status", "--dsn", dsn, "--api-schema", "api")
    assert proc.returncode == 2
    assert "API schema is public, not api" in proc.stderr and "restore the files" not in proc.stderr


def test_supabase_target_on_plain_postgres_is_refused_before_anything(empty_db: str) -> None:
    proc = run("migrate", "--dsn", empty_db, "--target", "supabase")
    assert proc.returncode == 2 and "table auth.users" in proc.stderr and "Nothing was applied" in proc.stderr
    assert scalar(empty_db, "select count(*) from pg_namespace where nspname in ('tenantdb', 'identity', 'private')") == 0


def test_rollback_all_with_audit_records_changes_nothing(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("update catalog.plans set name = 'Free plan' where key = 'free'")  # audited
        assert conn.execute("select count(*) from audit.platform_actions").fetchone()[0] > 0
    proc = run("rollback", "--dsn", dsn, "--all")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "nothing was reverted" in proc.stderr
    assert not [l for l in proc.stdout.splitlines() if l.startswith("reverted ")], "no change is said to be reverted"
    assert scalar(dsn, "select count(*) from tenantdb.changes") == len(CHANGE_IDS), "nothing was reverted"
    assert scalar(dsn, "select to_regclass('client_services.organizations') is not null") is True


def test_ddl_waits_no_longer_than_lock_timeout_and_names_the_holder(empty_db: str) -> None:
    assert run("migrate", "--dsn", empty_db, "--to", "0015_seed_contract").returncode == 0
    with psycopg.connect(empty_db) as holder:
        holder.execute("lock table billing.one_off_payments in access exclusive mode")
        pid = holder.info.backend_pid
        started = time.monotonic()
        proc = run("migrate", "--dsn", empty_db, "--lock-timeout", "1")
        elapsed = time.monotonic() - started
        holder.rollback()
    assert proc.returncode == 4, proc.stderr
    assert "0016_client_services.sql" in proc.stderr and f"pid {pid}" in proc.stderr and "billing.one_off_payments" in proc.stderr
    assert elapsed < 20
    assert scalar(empty_db, "select count(*) from tenantdb.changes") == CHANGE_IDS.index("0016_client_services")


def test_ctrl_c_exits_130(empty_db: str) -> None:
    with psycopg.connect(empty_db, autocommit=True) as holder:
        holder.execute("select pg_advisory_lock(%s)", (LOCK_KEY,))
        # Ctrl-C as a terminal delivers it, whatever started the suite: a
        # non-interactive shell starts a background job with SIGINT ignored,
        # and an ignored signal stays ignored across exec.
        proc = subprocess.Popen(CLI + ["migrate", "--dsn", empty_db, "--lock-timeout", "60"], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        time.sleep(2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err


def test_reset_drops_and_makes_the_database_again(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("insert into auth.users (email) values ('gone@reset.test')")
        # a development database: marked as `tenantdb up` and `reset` mark theirs (tests/test_operations.py
        # shows an unmarked one refused)
        conn.execute(sql.SQL("comment on database {} is {}").format(sql.Identifier(conn.info.dbname), sql.Literal(devdb.MARK)))
    refused = subprocess.run(CLI + ["reset", "--dsn", dsn], input="n\n", capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert refused.returncode == 1 and scalar(dsn, "select count(*) from identity.users") == 1
    proc = run("reset", "--dsn", dsn, "--yes")
    assert proc.returncode == 0, proc.stderr
    assert scalar(dsn, "select count(*) from identity.users") == 0
    assert scalar(dsn, "select count(*) from tenantdb.changes") == len(CHANGE_IDS)
    assert scalar(dsn, "select count(*) from catalog.plans") > 0, "and seeded"


def test_a_run_time_error_names_its_statement(empty_db: str, sql_copy: Path) -> None:
    """A failure without a position in the file (here a check constraint
    violated by existing rows) names the statement and its line, not the
    start of the file."""
    number = NEXT_NUMBER
    (sql_copy / "migrations" / f"{number}_strict.sql").write_text(
        "-- a change that fails on existing data\n"
        "create table app.t1 (id int primary key);\n"
        "insert into app.t1 values (1);\n"
        "alter table app.t1 add constraint t1_big check (id > 5);\n"
        "create table app.t2 (id int primary key);\n")
    (sql_copy / "migrations" / f"{number}_strict.rollback.sql").write_text("drop table app.t2; drop table app.t1;\n")
    proc = run("migrate", "--dsn", empty_db, cwd=sql_copy)
    assert proc.returncode == 1
    assert "SQLSTATE 23514" in proc.stderr and "at line 4" in proc.stderr
    assert "alter table app.t1 add constraint t1_big check (id > 5);" in proc.stderr
    assert scalar(empty_db, "select to_regclass('app.t1') is null") is True, "nothing of the change stayed"


def test_a_database_remembers_its_api_schema_and_target(empty_db: str) -> None:
    assert run("migrate", "--dsn", empty_db, "--api-schema", "api", "--to", "0001_foundation").returncode == 0
    # what the database recorded is the default: no need to repeat --api-schema
    proc = run("migrate", "--dsn", empty_db, "--to", "0002_identity")
    assert proc.returncode == 0, proc.stderr
    proc = run("migrate", "--dsn", empty_db, "--api-schema", "public")
    assert proc.returncode == 2 and "API schema is api, not public" in proc.stderr, proc.stderr
    wrong_target = run("status", "--dsn", empty_db, "--api-schema", "api", "--target", "supabase")
    assert wrong_target.returncode == 2 and "--target postgres" in wrong_target.stderr


def test_reset_refuses_before_dropping_anything(dsn: str) -> None:
    supabase = run("reset", "--dsn", dsn, "--yes", "--target", "supabase")
    assert supabase.returncode == 2 and "supabase db reset" in supabase.stderr
    assert scalar(dsn, "select count(*) from tenantdb.changes") == len(CHANGE_IDS)
    from psycopg.conninfo import make_conninfo

    protected = subprocess.run(CLI + ["reset", "--dsn", make_conninfo(dsn, dbname="postgres")], input="", capture_output=True,
                               text=True, cwd=ROOT, timeout=60)
    assert protected.returncode == 2 and "refuses database postgres" in protected.stderr and "drop database" not in protected.stdout


def test_docs_refuses_a_database_without_tenantdb(empty_db: str, tmp_path: Path) -> None:
    out = tmp_path / "schema"
    shutil.copytree(ROOT / "docs" / "schema", out)
    before = sorted(p.name for p in out.iterdir())
    proc = run("docs", "--dsn", empty_db, str(out))
    assert proc.returncode == 1 and "no tenantdb changes" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == before


def test_argument_checks(empty_db: str, tmp_path: Path) -> None:
    """--lock-timeout 0 would wait forever: refused. A .env value may carry an inline comment."""
    assert run("migrate", "--dsn", empty_db, "--lock-timeout", "0").returncode == 2
    parts = dict(kv.split("=", 1) for kv in empty_db.split())
    uri = f"postgresql://{parts['user']}@{parts['host']}:{parts['port']}/{parts['dbname']}"
    (tmp_path / ".env").write_text(f"DATABASE_URL={uri}  # the dev database\n")
    proc = run("status", "--sql-dir", str(ROOT), cwd=tmp_path, env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"})
    assert proc.returncode == 0 and "pending  0001_foundation" in proc.stdout, proc.stderr
