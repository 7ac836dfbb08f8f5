"""The CLI's rough edges: a database deployed without tenantdb's history, a
half-migrated database, the recorded target as the default, changes named
by number, an empty dry run, errors as JSON, which database status read,
quiet exports that check their base, no secret in any error, and the OS
user `up` creates as root."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from conftest import ROOT, pg_tool
from tenantdb import embedded, export
from tenantdb.render import Renderer, Target

CLI = [sys.executable, str(ROOT / "cli.py")]
CHANGE_IDS = [c.id for c in Renderer(Target()).changes()]


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def scalar(dsn: str, query: str) -> object:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(query).fetchone()[0]


def test_a_database_deployed_without_history_is_pointed_at_adopt(empty_db: str) -> None:
    """tenantdb's schemas without tenantdb.changes (what an export deployed
    by sqitch leaves): status says adopt, migrate refuses naming it instead
    of failing on `schema "identity" already exists`, verify says it."""
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute("create schema identity; create schema tenancy")
    status = run("--dsn", empty_db, "status")
    assert status.returncode == 0, status.stderr
    assert "tenantdb adopt --target postgres --api-schema public --dry-run" in status.stdout
    migrate = run("--dsn", empty_db, "migrate")
    assert migrate.returncode == 2, migrate.stderr
    assert "no tenantdb history" in migrate.stderr and "tenantdb adopt" in migrate.stderr
    assert "already exists" not in migrate.stderr
    assert scalar(empty_db, "select to_regclass('tenantdb.changes') is null"), "nothing applied"
    verify = run("--dsn", empty_db, "verify")
    assert verify.returncode == 1 and "unmanaged: identity, tenancy" in verify.stdout, verify.stdout


def test_verify_on_a_half_migrated_database_lists_what_is_pending(empty_db: str) -> None:
    assert run("--dsn", empty_db, "migrate", "--to", "0004_tenancy").returncode == 0
    proc = run("--dsn", empty_db, "verify", "--json")
    assert proc.returncode == 1, proc.stderr
    problems = json.loads(proc.stdout)["problems"]
    pending = [p["object"] for p in problems if p["check"] == "pending"]
    assert pending == CHANGE_IDS[4:]
    assert problems[: len(pending)] == [p for p in problems if p["check"] == "pending"], "pending first"
    assert "does not exist" not in proc.stdout + proc.stderr


def test_the_recorded_target_and_api_schema_are_the_default(empty_db: str) -> None:
    assert run("--dsn", empty_db, "--api-schema", "api", "migrate", "--to", "0003_iam").returncode == 0
    status = run("--dsn", empty_db, "status")
    assert status.returncode == 0, status.stderr
    assert "(--target postgres, --api-schema api)" in status.stdout
    proc = run("--dsn", empty_db, "migrate", "--to", "0004_tenancy")
    assert proc.returncode == 0, proc.stderr
    assert scalar(empty_db, "select to_regprocedure('api.create_organization(text, text, text)') is not null")
    # an explicit option still wins, and a wrong one is still refused
    wrong = run("--dsn", empty_db, "--api-schema", "public", "status")
    assert wrong.returncode == 2 and "--api-schema api" in wrong.stderr


def test_a_change_is_named_by_its_number(empty_db: str) -> None:
    proc = run("--dsn", empty_db, "migrate", "--to", "0003")
    assert proc.returncode == 0, proc.stderr
    assert scalar(empty_db, "select count(*) from tenantdb.changes") == 3
    assert run("--dsn", empty_db, "migrate", "--to", "5").returncode == 0
    assert scalar(empty_db, "select count(*) from tenantdb.changes") == 5
    proc = run("--dsn", empty_db, "rollback", "--to", "2", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert scalar(empty_db, "select array_agg(change_id order by change_id) from tenantdb.changes") == CHANGE_IDS[:2]
    unknown = run("--dsn", empty_db, "migrate", "--to", "0999")
    assert unknown.returncode == 2 and "--to 0999: no such change" in unknown.stderr


def test_an_empty_dry_run_prints_nothing_on_stdout(dsn: str) -> None:
    proc = run("--dsn", dsn, "migrate", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert "nothing to apply" in proc.stderr


def test_errors_under_json_are_json_objects_with_the_exit_code(empty_db: str) -> None:
    usage = run("--dsn", empty_db, "migrate", "--to", "nosuch", "--json")
    assert usage.returncode == 2
    assert json.loads(usage.stdout) == {"error": json.loads(usage.stdout)["error"], "exit_code": 2}
    assert "--to nosuch: no such change" in json.loads(usage.stdout)["error"]
    unreachable = run("--dsn", "host=127.0.0.1 port=1 dbname=x connect_timeout=2", "status", "--json")
    assert unreachable.returncode == 3
    assert json.loads(unreachable.stdout)["exit_code"] == 3
    option = run("--dsn", empty_db, "status", "--json", "--no-such-option")
    assert option.returncode == 2 and json.loads(option.stdout)["exit_code"] == 2


def test_status_names_the_database_it_read_and_never_the_password(dsn: str) -> None:
    with_password = dsn + " password=s3cretpw"
    proc = run("--dsn", with_password, "status")
    assert proc.returncode == 0, proc.stderr
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    assert proc.stdout.splitlines()[0].startswith(
        f"database {info['dbname']} on {info['host']}:{info['port']} as {info['user']}")
    as_json = run("--dsn", with_password, "status", "--json")
    assert json.loads(as_json.stdout)["database"] == {
        "host": info["host"], "port": str(info["port"]), "dbname": info["dbname"], "user": info["user"]}
    assert "s3cretpw" not in proc.stdout + proc.stderr + as_json.stdout + as_json.stderr


@pytest.mark.parametrize("debug", [[], ["--debug"]])
def test_no_secret_in_any_error(debug: list[str]) -> None:
    """A password with a bad percent-escape used to be echoed (three times
    with --debug): in --dsn, in DATABASE_URL, and in a key=value DSN that
    libpq cannot parse."""
    secret = "s3cr%ZZet"
    cases = [
        (["--dsn", f"postgresql://u:{secret}@localhost/x", "status"], {}),
        (["status"], {"DATABASE_URL": f"postgresql://u:{secret}@localhost/x"}),
        (["--dsn", f"host=localhost password='{secret} dbname=x", "status"], {}),
        (["--dsn", f"postgresql://u:{secret}@localhost:99999/x", "migrate"], {}),
    ]
    for args, env in cases:
        proc = run(*debug, *args, env=env)
        assert proc.returncode in (2, 3), proc.stderr
        assert "s3cr" not in proc.stdout + proc.stderr, (args, proc.stderr)
        assert proc.stderr.strip(), "an error is still reported"


def test_exports_are_quiet(empty_db: str, tmp_path: Path) -> None:
    """A fresh deploy of the exported deploy scripts prints no NOTICE (there
    were hundreds): each runs as sqitch runs it, in its own psql session."""
    export.sqitch(Renderer(Target()).changes(), tmp_path)
    plan = [line.split()[0] for line in (tmp_path / "sqitch.plan").read_text().splitlines()[3:]]
    noise = []
    for change in plan:
        proc = subprocess.run([pg_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", empty_db,
                               "-f", str(tmp_path / "deploy" / f"{change}.sql")], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        noise += [line for line in (proc.stdout + proc.stderr).splitlines() if "NOTICE" in line]
    assert noise == []
    assert scalar(empty_db, "select to_regclass('tenancy.organizations') is not null")


def test_the_supabase_export_checks_its_base_up_front(empty_db: str, tmp_path: Path) -> None:
    files = export.supabase(Renderer(Target("supabase")).changes(), tmp_path)
    proc = subprocess.run([pg_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", empty_db, "-f", str(files[0])],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "this export is rendered for Supabase (--target supabase) and this database lacks: schema auth" in proc.stderr
    assert "tenantdb migrate" in proc.stderr
    assert scalar(empty_db, "select count(*) from pg_namespace where nspname in ('identity', 'iam', 'private')") == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="creating an OS user needs root; `up` as another user creates none")
def test_up_as_root_creates_its_os_user_without_a_login_shell() -> None:
    name = f"tdbtest{uuid.uuid4().hex[:8]}"
    said: list[str] = []
    try:
        embedded.ensure_system_user(name, said.append)
        entry = pwd.getpwnam(name)
        assert entry.pw_shell in ("/usr/sbin/nologin", "/sbin/nologin", "/bin/false")
        assert entry.pw_uid < 1000, "a system user"
        assert said == [f"created OS user {name} (a system user, no login shell: {entry.pw_shell}) "
                        "to run the server: PostgreSQL refuses root"]
        embedded.ensure_system_user(name, said.append)
        assert len(said) == 1, "an existing user is left as it is, silently"
    finally:
        subprocess.run(["userdel", name], capture_output=True)
