"""tenantdb adopt: a database deployed from an export (the real sqitch, or
the Supabase files applied with psql) is checked, recorded, and then
verified, seeded and migrated by tenantdb; one that differs is refused and
nothing is recorded."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from conftest import ROOT, TESTS, conninfo, pg_tool, scratch_database
from tenantdb import export
from tenantdb.paths import SQL_DIRS
from tenantdb.render import Renderer, Target
from test_exports import sqitch_uri

CLI = [sys.executable, str(ROOT / "cli.py")]
CHANGES = Renderer(Target()).changes()
CHANGE_IDS = [c.id for c in CHANGES]


def run(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, cwd=ROOT, timeout=600)


def psql_file(dsn: str, path: Path) -> None:
    proc = subprocess.run([pg_tool("psql"), "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-f", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"{path.name}: {proc.stderr}"


def scalar(dsn: str, query: str, params: tuple = ()) -> object:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(query, params).fetchone()[0]


def recorded_nothing(dsn: str) -> bool:
    return scalar(dsn, "select to_regnamespace('tenantdb') is null")


def add_extra_migration(root: Path) -> None:
    """A new migration after the deployed ones: a small table."""
    (root / "migrations" / "0099_extra.sql").write_text(
        "create table app.extra_notes (id bigint generated always as identity primary key, note text);\n"
        "comment on table app.extra_notes is 'A test table added after the export.';\n")
    (root / "migrations" / "0099_extra.rollback.sql").write_text("drop table app.extra_notes;\n")


def assert_adopted(dsn: str, changes: list, target: str) -> None:
    """The bookkeeping migrate would have written: the same ids, checksums and target."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = dict((cid, (checksum, t)) for cid, checksum, t in
                    conn.execute("select change_id, checksum, target from tenantdb.changes").fetchall())
        assert rows == {c.id: (c.checksum, target) for c in changes}
        reps = dict(conn.execute("select path, checksum from tenantdb.repeatables").fetchall())
        assert reps == {r.path: r.checksum for c in changes for r in c.repeatables}
        assert sorted(r[0] for r in conn.execute("select migration_id from tenantdb._yoyo_migration")) == sorted(c.id for c in changes)
        assert conn.execute("select count(*) from tenantdb._yoyo_log where operation = 'mark'").fetchone()[0] == len(changes)


def then_verify_seed_and_migrate_only_the_new_one(dsn: str, root: Path, *options: object) -> None:
    proc = run("--sql-dir", root, "--dsn", dsn, *options, "verify")
    assert proc.returncode == 0 and proc.stdout.splitlines()[-1] == "ok", proc.stdout + proc.stderr
    proc = run("--sql-dir", root, "--dsn", dsn, *options, "seed")
    assert proc.returncode == 0, proc.stderr
    # the exported seed.sql already loaded the same catalog: nothing left to write
    catalog_line = next(l for l in proc.stdout.splitlines() if l.startswith("seeded catalog.json: "))
    written = json.loads(catalog_line.split(": ", 1)[1].rsplit(" (", 1)[0])
    assert written["plans"] == 0 and all(v in (0, []) for v in written.values()), catalog_line
    add_extra_migration(root)
    proc = run("--sql-dir", root, "--dsn", dsn, *options, "migrate")
    assert proc.returncode == 0, proc.stderr
    assert [l.split(" (")[0] for l in proc.stdout.splitlines() if l.startswith("applied ")] == ["applied 0099_extra"], proc.stdout
    assert scalar(dsn, "select to_regclass('app.extra_notes') is not null")
    proc = run("--sql-dir", root, "--dsn", dsn, *options, "status")
    assert "pending" not in proc.stdout and "changed" not in proc.stdout and "applied  0099_extra" in proc.stdout, proc.stdout


@pytest.fixture
def sql_copy(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    for d in SQL_DIRS:
        shutil.copytree(ROOT / d, root / d)
    return root


def test_sqitch_deployment_is_adopted_then_verified_seeded_and_migrated(empty_db: str, sql_copy: Path, tmp_path: Path) -> None:
    project = tmp_path / "sqitch"
    proc = run("--sql-dir", sql_copy, "export", "sqitch", project)
    assert proc.returncode == 0, proc.stderr
    # the seed is a script beside the plan, not a change of it
    assert (project / "seed.sql").is_file() and "private.load_catalog(" in (project / "seed.sql").read_text()
    assert [l.split()[0] for l in (project / "sqitch.plan").read_text().splitlines() if l and l[0].isalnum()] == CHANGE_IDS
    env = dict(os.environ, HOME=str(tmp_path), SQITCH_FULLNAME="CI", SQITCH_EMAIL="ci@localhost")
    proc = subprocess.run(["sqitch", "deploy", "--verify", sqitch_uri(empty_db)], cwd=project, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    psql_file(empty_db, project / "seed.sql")
    assert scalar(empty_db, "select count(*) from catalog.plans where key = 'free' and is_active") == 1
    # sqitch's script_hash is the SHA-1 of the deploy script the export writes
    assert scalar(empty_db, "select script_hash from sqitch.changes where change = '0004_tenancy'") == export.sqitch_script_hash(
        next(c for c in Renderer(Target(), root=sql_copy).changes() if c.id == "0004_tenancy"))
    # Before: verify, status and migrate point at adopt (migrate used to fail on `schema "identity" already exists`).
    proc = run("--sql-dir", sql_copy, "--dsn", empty_db, "verify")
    assert proc.returncode == 1 and "unmanaged: " in proc.stdout and "tenantdb adopt" in proc.stdout
    proc = run("--sql-dir", sql_copy, "--dsn", empty_db, "migrate")
    assert proc.returncode == 2 and "tenantdb adopt --target postgres --api-schema public --dry-run" in proc.stderr
    assert "already exists" not in proc.stderr and recorded_nothing(empty_db)

    proc = run("--sql-dir", sql_copy, "--dsn", empty_db, "adopt", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert [l.split()[2] for l in proc.stdout.splitlines() if l.startswith("would record ")] == CHANGE_IDS
    assert "sqitch registry" in proc.stdout and recorded_nothing(empty_db)

    proc = run("--sql-dir", sql_copy, "--dsn", empty_db, "adopt")
    assert proc.returncode == 0, proc.stderr
    assert [l.split()[1] for l in proc.stdout.splitlines() if l.startswith("adopted 0")] == CHANGE_IDS
    assert_adopted(empty_db, CHANGES, "postgres")
    then_verify_seed_and_migrate_only_the_new_one(empty_db, sql_copy)


def test_supabase_files_applied_with_psql_are_adopted(empty_db: str, sql_copy: Path, tmp_path: Path) -> None:
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute((TESTS / "fixtures" / "supabase_like_auth.sql").read_text().encode())
    out = tmp_path / "export"
    proc = run("--sql-dir", sql_copy, "export", "supabase", out)
    assert proc.returncode == 0, proc.stderr
    seed = out / "supabase" / "seed.sql"
    assert seed.is_file() and "target supabase" in seed.read_text()
    for path in sorted((out / "supabase" / "migrations").glob("*.sql")):
        psql_file(empty_db, path)
    psql_file(empty_db, seed)
    psql_file(empty_db, seed)  # idempotent, as supabase db reset may run it again
    assert scalar(empty_db, "select count(*) from catalog.plans where key = 'free' and is_active") == 1

    # Adopting it as a plain-PostgreSQL deployment is refused: the target differs.
    proc = run("--sql-dir", sql_copy, "--dsn", empty_db, "adopt")
    assert proc.returncode == 1 and "target: the database lacks identity.accounts, identity.sessions, identity.verifications, " \
        "which --target postgres creates: deployed with --target supabase?" in proc.stderr, proc.stderr
    assert recorded_nothing(empty_db)

    proc = run("--sql-dir", sql_copy, "--dsn", empty_db, "--target", "supabase", "adopt")
    assert proc.returncode == 0, proc.stderr
    assert "the objects only" in proc.stdout
    assert_adopted(empty_db, Renderer(Target("supabase")).changes(), "supabase")
    then_verify_seed_and_migrate_only_the_new_one(empty_db, sql_copy, "--target", "supabase")


# -- refusals, on a database deployed with psql from the rendered files ---------
@pytest.fixture(scope="module")
def deployed_template(postgresql_proc, tmp_path_factory) -> str:
    """A database deployed outside tenantdb (psql of each change's deploy
    script, then the exported seed.sql), used as a template."""
    admin = conninfo(postgresql_proc.host, postgresql_proc.port, postgresql_proc.user, "postgres")
    name = f"deployed_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    dsn = conninfo(postgresql_proc.host, postgresql_proc.port, postgresql_proc.user, name)
    folder = tmp_path_factory.mktemp("deploy")
    for change in CHANGES:
        (folder / f"{change.id}.sql").write_text(export.deploy_sql(change))
        psql_file(dsn, folder / f"{change.id}.sql")
    (folder / "seed.sql").write_text(export.seed_sql(Renderer(Target())))
    psql_file(dsn, folder / "seed.sql")
    yield name
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture
def deployed(postgresql_proc, deployed_template: str) -> str:
    """A fresh copy of the deployed template."""
    yield from scratch_database(postgresql_proc, "copy", deployed_template)


def test_an_altered_function_is_refused_and_nothing_recorded(deployed: str) -> None:
    with psycopg.connect(deployed, autocommit=True) as conn:
        definition = conn.execute("select pg_get_functiondef('private.load_catalog(jsonb)'::regprocedure)").fetchone()[0]
        assert "\nbegin\n" in definition
        conn.execute(definition.replace("\nbegin\n", "\nbegin\n  raise notice 'changed by hand';\n", 1))
    proc = run("--dsn", deployed, "adopt")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "nothing was recorded" in proc.stderr and "Traceback" not in proc.stderr
    assert "function private.load_catalog(jsonb): differs from functions/0005_catalog.sql (definition)" in proc.stderr, proc.stderr
    assert len([l for l in proc.stderr.splitlines() if l.startswith("  ")]) == 1, proc.stderr  # that one, nothing else
    assert recorded_nothing(deployed)
    proc = run("--dsn", deployed, "adopt", "--dry-run")
    assert proc.returncode == 1 and "private.load_catalog(jsonb)" in proc.stderr and recorded_nothing(deployed)


@pytest.mark.parametrize(("tamper", "difference"), [
    ("drop policy tenant_update on app.projects",
     "policy tenant_update on app.projects: missing (policies/0014_projects.sql creates it)"),
    ("alter table app.projects disable trigger gate_and_meter",
     "trigger gate_and_meter on app.projects: differs from functions/0014_projects.sql (definition)"),
    ("alter table app.projects no force row level security",
     "table app.projects: differs from the package's repeatables (row level security)"),
    ("grant execute on function private.load_catalog(jsonb) to authenticated",
     "function private.load_catalog(jsonb): differs from functions/0005_catalog.sql (privileges)"),
    ("create function private.load_catalog(doc text) returns jsonb language sql as 'select null::jsonb'",
     "function private.load_catalog(text): an overload functions/0005_catalog.sql does not define (migrate would drop it)"),
])
def test_what_the_repeatables_make_is_compared(deployed: str, tamper: str, difference: str) -> None:
    with psycopg.connect(deployed, autocommit=True) as conn:
        conn.execute(tamper)
    proc = run("--dsn", deployed, "adopt")
    assert proc.returncode == 1 and f"  {difference}\n" in proc.stderr, proc.stderr
    assert len([l for l in proc.stderr.splitlines() if l.startswith("  ")]) == 1, proc.stderr
    assert recorded_nothing(deployed)


def test_a_missing_table_is_refused_and_nothing_recorded(deployed: str) -> None:
    with psycopg.connect(deployed, autocommit=True) as conn:
        conn.execute("drop table crm.reminders cascade")
    proc = run("--dsn", deployed, "adopt")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "table crm.reminders: missing (0013_crm creates it)" in proc.stderr, proc.stderr
    assert recorded_nothing(deployed)


def test_an_extra_function_in_private_is_refused(deployed: str) -> None:
    with psycopg.connect(deployed, autocommit=True) as conn:
        conn.execute("create function private.leftover_helper() returns int language sql as 'select 1'")
    proc = run("--dsn", deployed, "adopt")
    assert proc.returncode == 1 and "function private.leftover_helper(): in private, but no adopted file defines it" in proc.stderr, proc.stderr
    assert recorded_nothing(deployed)


def test_another_target_or_api_schema_is_refused(deployed: str) -> None:
    proc = run("--dsn", deployed, "--target", "supabase", "adopt")
    assert proc.returncode == 1 and "target: the database has identity.accounts, identity.sessions, identity.verifications, " \
        "which only --target postgres creates" in proc.stderr, proc.stderr
    proc = run("--dsn", deployed, "--api-schema", "api", "adopt")
    assert proc.returncode == 1 and "schema api: the API schema (--api-schema) does not exist" in proc.stderr, proc.stderr
    with psycopg.connect(deployed, autocommit=True) as conn:
        conn.execute("create schema api")
    proc = run("--dsn", deployed, "--api-schema", "api", "adopt")
    assert proc.returncode == 1 and "the database has them in public: pass --api-schema public" in proc.stderr, proc.stderr
    assert recorded_nothing(deployed)


def test_adopting_twice_says_it_is_already_managed(deployed: str) -> None:
    proc = run("--dsn", deployed, "adopt")
    assert proc.returncode == 0, proc.stderr
    assert_adopted(deployed, CHANGES, "postgres")
    proc = run("--dsn", deployed, "adopt")
    assert proc.returncode == 0 and "already managed by tenantdb (%d change(s) recorded)" % len(CHANGES) in proc.stdout, proc.stdout
    assert_adopted(deployed, CHANGES, "postgres")  # one 'mark' per change: nothing recorded twice
    wrong = run("--dsn", deployed, "--target", "supabase", "adopt")
    assert wrong.returncode == 2 and "--target postgres" in wrong.stderr, "a managed database still refuses another target"


def test_registries_are_cross_checked(deployed: str) -> None:
    # sqitch's registry (the columns adopt reads) with one deploy script that is not this package's
    with psycopg.connect(deployed, autocommit=True) as conn:
        conn.execute("create schema sqitch; create table sqitch.changes (change_id text primary key, script_hash text, "
                     "change text, project text, committed_at timestamptz)")
        for i, change in enumerate(CHANGES):
            script_hash = export.sqitch_script_hash(change) if change.id != "0006_billing" else "0" * 40
            conn.execute("insert into sqitch.changes values (%s, %s, %s, 'tenantdb', now() + %s * interval '1 s')",
                         (uuid.uuid4().hex, script_hash, change.id, i))
    proc = run("--dsn", deployed, "adopt")
    assert proc.returncode == 1 and "sqitch change 0006_billing: deployed from another deploy script" in proc.stderr, proc.stderr
    assert len([l for l in proc.stderr.splitlines() if l.startswith("  ")]) == 1, proc.stderr
    # Supabase's registry that lists fewer changes than the database holds
    with psycopg.connect(deployed, autocommit=True) as conn:
        conn.execute("drop schema sqitch cascade; create schema supabase_migrations; "
                     "create table supabase_migrations.schema_migrations (version text primary key, statements text[], name text)")
        conn.execute("insert into supabase_migrations.schema_migrations values ('20250101000000', null, 'the_projects_own')")
        for change in CHANGES[: CHANGE_IDS.index("0012_limits")]:
            conn.execute("insert into supabase_migrations.schema_migrations values (%s, null, %s)", export.supabase_version(change))
    proc = run("--dsn", deployed, "adopt", "--to", "0012_limits")
    assert proc.returncode == 1 and "--to: the Supabase registry says 0011_account_deletion is the last change deployed" in proc.stderr, proc.stderr
    proc = run("--dsn", deployed, "adopt")
    assert proc.returncode == 1 and "table catalog.limits: exists, but 0012_limits, which creates it, is not being adopted" in proc.stderr, proc.stderr
    assert recorded_nothing(deployed)


def test_an_older_deployment_is_adopted_up_to_its_last_change(empty_db: str, tmp_path: Path) -> None:
    last = "0010_read_paths"
    for change in CHANGES[: CHANGE_IDS.index(last) + 1]:
        (tmp_path / f"{change.id}.sql").write_text(export.deploy_sql(change))
        psql_file(empty_db, tmp_path / f"{change.id}.sql")
    proc = run("--dsn", empty_db, "adopt")
    assert proc.returncode == 1 and f"hint: it looks deployed up to {last} (an older export): try --to {last}" in proc.stderr, proc.stderr
    assert recorded_nothing(empty_db)
    proc = run("--dsn", empty_db, "adopt", "--to", last)
    assert proc.returncode == 0, proc.stderr
    assert_adopted(empty_db, CHANGES[: CHANGE_IDS.index(last) + 1], "postgres")
    proc = run("--dsn", empty_db, "migrate")
    assert proc.returncode == 0, proc.stderr
    assert [l.split()[1] for l in proc.stdout.splitlines() if l.startswith("applied ")] == CHANGE_IDS[CHANGE_IDS.index(last) + 1:]
    proc = run("--dsn", empty_db, "seed")
    assert proc.returncode == 0, proc.stderr
    proc = run("--dsn", empty_db, "verify")
    assert proc.returncode == 0 and proc.stdout.splitlines()[-1] == "ok", proc.stdout


def test_nothing_deployed_is_not_adopted(empty_db: str) -> None:
    proc = run("--dsn", empty_db, "adopt")
    assert proc.returncode == 1 and "nothing to adopt" in proc.stderr, proc.stderr
    assert recorded_nothing(empty_db)


@pytest.mark.parametrize(("tamper", "difference"), [
    ("alter table tenancy.organizations drop constraint organizations_slug_unique",
     "constraint organizations_slug_unique on tenancy.organizations: missing"),
    ("grant all on tenancy.organizations to anon",
     "table tenancy.organizations: privileges differs"),
    ("alter table tenancy.organizations add column notes text",
     "column tenancy.organizations.notes: not in the package"),
    ("alter table tenancy.organizations alter column settings drop not null",
     "column tenancy.organizations.settings: shape differs"),
    ("create role adopt_evil; alter function private.username_is_reserved(text) owner to adopt_evil",
     "function private.username_is_reserved(text): owner differs"),
    ("drop index identity.users_username_unique_ci; create index users_username_unique_ci on identity.users (username)",
     "index identity.users_username_unique_ci: definition differs"),
])
def test_what_the_migrations_make_is_compared_with_a_fresh_install(deployed: str, tamper: str, difference: str) -> None:
    """Columns, defaults, constraints, indexes, privileges and owners are
    compared with a scratch database migrated from the package: a change
    by hand to what a migration made is refused too."""
    with psycopg.connect(deployed, autocommit=True) as conn:
        conn.execute(tamper)
    try:
        proc = run("--dsn", deployed, "adopt")
        assert proc.returncode == 1 and f"  {difference}" in proc.stderr, proc.stderr
        assert recorded_nothing(deployed)
        with psycopg.connect(deployed, autocommit=True) as conn:
            assert conn.execute("select count(*) from pg_database where datname like 'tenantdb_adopt_%'").fetchone()[0] == 0, \
                "the scratch database is dropped"
    finally:
        if "adopt_evil" in tamper:
            with psycopg.connect(deployed, autocommit=True) as conn:
                conn.execute("alter function private.username_is_reserved(text) owner to current_user; drop role adopt_evil")
