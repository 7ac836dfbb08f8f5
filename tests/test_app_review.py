"""Defects found reviewing app projects as an app team and as a DBA would
use them: a seed without the app stripping the app's plan limits; a
second (or renamed) app migrated into a database holding another app's
history; a role taken off an app permission that keeps it; a template
error in an app seed, or a migration without its rollback file, reported
as an unexpected error; an app meter alias taking the package's; an app
function replacing the package's (and dropped with its triggers at
rollback); an unqualified app table in the bookkeeping schema that verify
passed; tenantdb.toml settings not named in their errors; the project's
.env not found below its root; a connection error garbled when no DSN is
set."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import psycopg
import pytest

from apps import DOCUMENTS, cli, make_app
from test_app_project import ok
from tenantdb import appseed
from tenantdb.paths import package_root
from tenantdb.project import load


def rows(dsn: str, query: str, params: tuple | None = None) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchall()


LIMITS = "select plan_key from catalog.plan_features where feature_key = 'max_documents' order by 1"


def test_a_seed_without_the_app_is_refused_and_keeps_the_apps_plan_limits(app_db: tuple[Path, str]) -> None:
    """The package's catalog alone (seed run outside the app project) or
    another app's would remove the app's plan features: every insert into
    the app's metered table would then be refused, and verify said ok."""
    root, db = app_db
    assert rows(db, LIMITS) == [("free",), ("pro",)]
    blog = make_app(root.parent, name="blog", files={})
    for where in (root.parent, blog):
        proc = cli("seed", "--dsn", db, cwd=where)
        assert proc.returncode == 1, proc.stderr
        assert "holds app shop's changes (shop:0001_documents)" in proc.stderr, proc.stderr
        assert "run tenantdb seed in that app's project" in proc.stderr and "Nothing was seeded" in proc.stderr
        assert "seeded " not in proc.stdout  # refused before anything is loaded
        assert rows(db, LIMITS) == [("free",), ("pro",)]
    ok(cli("seed", "--dsn", db, cwd=root))
    assert ok(cli("verify", "--dsn", db, cwd=root)).strip().endswith("ok")


def test_a_second_app_or_a_renamed_one_is_refused_by_migrate(app_db: tuple[Path, str]) -> None:
    """One app history per database: another app's changes (or the same
    app's under a new name) would leave both unable to roll back, verify
    failing for ever, or fail on the app's own tables."""
    root, db = app_db
    blog = make_app(root.parent, name="blog", files={
        "migrations/0001_posts.sql": "create table app.posts (id int);\n",
        "migrations/0001_posts.rollback.sql": "drop table app.posts;\n"})
    for args in (("migrate",), ("migrate", "--dry-run")):
        proc = cli(*args, "--dsn", db, cwd=blog)
        assert proc.returncode == 2, proc.stderr
        assert "this database holds app shop's changes (shop:0001_documents), not blog's" in proc.stderr, proc.stderr
        assert "Nothing was applied" in proc.stderr
    assert rows(db, "select count(*) from tenantdb.changes where change_id like 'blog:%'") == [(0,)]
    assert rows(db, "select to_regclass('app.posts')") == [(None,)]
    config = root / "tenantdb.toml"
    config.write_text(config.read_text().replace('name = "shop"', 'name = "shop2"'))
    renamed = cli("migrate", "--dsn", db, cwd=root)
    assert renamed.returncode == 2 and "holds app shop's changes (shop:0001_documents), not shop2's" in renamed.stderr
    assert "already exists" not in renamed.stderr
    # the package alone still migrates a database holding the app (nothing to apply here)
    assert "nothing to apply" in ok(cli("migrate", "--dsn", db, cwd=root.parent))


def test_a_role_taken_off_an_app_permission_no_longer_holds_it(app_db: tuple[Path, str]) -> None:
    """seeds/permissions.json says which tenant roles hold the app's
    permissions: a role taken off one (or a permission no longer declared)
    loses it at the next seed; the package's mappings are untouched."""
    root, db = app_db
    held = "select permission_key, role_key from iam.role_permissions where permission_key like 'document.%' order by 1, 2"
    package = "select permission_key, role_key from iam.role_permissions where permission_key not like 'document.%' order by 1, 2"
    before = rows(db, package)
    assert ("document.delete", "tenant_admin") in rows(db, held)
    path = root / "seeds/permissions.json"
    permissions = json.loads(path.read_text())
    permissions["permissions"] = [p for p in permissions["permissions"] if p["key"] != "document.update"]
    next(p for p in permissions["permissions"] if p["key"] == "document.delete")["roles"] = ["tenant_owner"]
    path.write_text(json.dumps(permissions))
    out = ok(cli("seed", "--dsn", db, cwd=root))
    assert "seeded shop:seeds/permissions.json: 0 permission(s) written, 4 role mapping(s) removed" in out, out
    assert rows(db, held) == [("document.create", "tenant_admin"), ("document.create", "tenant_member"),
                              ("document.create", "tenant_owner"), ("document.delete", "tenant_owner")]
    assert rows(db, package) == before
    assert "role mapping" not in ok(cli("seed", "--dsn", db, cwd=root))  # nothing more to remove


def test_a_template_error_in_an_app_seed_names_the_file_and_line(app_db: tuple[Path, str]) -> None:
    """Not "unexpected error ... (rerun with --debug)": the file and line,
    as for a migration."""
    root, db = app_db
    (root / "seeds/extra.sql").write_text("select 1;\n{{ m.updated_at('app.documents') }}\n")
    for command in ("seed", "verify"):
        proc = cli(command, "--dsn", db, cwd=root)
        assert proc.returncode == 2, proc.stderr
        assert f"tenantdb: {root.resolve() / 'seeds/extra.sql'}:2: UndefinedError: 'm' is undefined" in proc.stderr, \
            proc.stderr
        assert "unexpected error" not in proc.stderr


def test_an_app_meter_alias_that_is_the_packages_is_refused_by_name(tmp_path: Path) -> None:
    """The package's api_call answers to api_calls: an app meter given that
    alias was loaded (and the alias rewritten at every seed), not refused."""
    root = make_app(tmp_path)
    catalog = json.loads((root / "seeds/catalog.json").read_text())
    catalog["meters"][0]["aliases"] = ["api_calls"]
    (root / "seeds/catalog.json").write_text(json.dumps(catalog))
    with pytest.raises(appseed.SeedConflict, match='meter "documents", alias "api_calls": already the package\'s'):
        appseed.catalog_document(package_root(), load(root))
    catalog["meters"][0]["aliases"] = ["documents_stored"]
    (root / "seeds/catalog.json").write_text(json.dumps(catalog))
    document, _ = appseed.catalog_document(package_root(), load(root))
    assert next(m for m in document["meters"] if m["key"] == "documents")["aliases"] == ["documents_stored"]


def test_a_connection_error_without_a_dsn_is_readable(tmp_path: Path) -> None:
    """With no --dsn, DATABASE_URL, .env or `tenantdb up` server (libpq's
    defaults), the message was libpq's with '<the connection string>'
    between every two characters."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TENANTDB_PROJECT", "TENANTDB_SQL_DIR")}
    env.update(PGHOST=str(tmp_path / "no-server"), PGPORT="5999", PGCONNECT_TIMEOUT="2")
    root = make_app(tmp_path, files={})
    proc = cli("status", cwd=root, env=env)
    assert proc.returncode == 3, proc.stderr
    assert "<the connection string>" not in proc.stderr
    assert f'tenantdb: cannot connect to the database: connection is bad: connection to server on socket ' \
           f'"{tmp_path / "no-server"}/.s.PGSQL.5999" failed' in proc.stderr, proc.stderr


def test_an_app_function_named_like_the_packages_is_refused(tmp_path: Path, empty_db: str) -> None:
    """An app repeatable defining private.set_updated_at replaced the
    package's at migrate, and rolling the app change back dropped it with
    every package trigger that calls it (updated_at on 25 tables), silently."""
    files = dict(DOCUMENTS)
    files["functions/0001_documents.sql"] += (
        "create or replace function private.set_updated_at() returns trigger\n"
        "language plpgsql as $$ begin new.updated_at := now(); return new; end $$;\n")
    root = make_app(tmp_path, files=files)
    for args in (("render",), ("migrate", "--dsn", empty_db)):
        proc = cli(*args, cwd=root)
        assert proc.returncode == 2, proc.stderr
        assert (f"{root.resolve() / 'functions/0001_documents.sql'} defines private.set_updated_at, which is the "
                "package's (functions/0001_foundation.sql)") in proc.stderr, proc.stderr
    assert rows(empty_db, "select to_regclass('tenantdb.changes')") == [(None,)]  # nothing applied


@pytest.mark.parametrize("setting, value, expected", [
    ("target", '"oracle"', "database.target must be postgres or supabase; got 'oracle'"),
    ("api_schema", '"Api"', "database.api_schema must be a plain lower-case schema name; got 'Api'"),
    ("without", '["0099_x"]', "database.without: 0099_x: no such change (optional ones: 0016_client_services)"),
])
def test_a_bad_database_setting_names_tenantdb_toml(tmp_path: Path, setting: str, value: str, expected: str) -> None:
    """They said "unknown target 'oracle'", "API schema name 'Api' ..." and
    "--without 0099_x: no such change", an option nobody gave."""
    root = make_app(tmp_path, files={})
    config = root / "tenantdb.toml"
    config.write_text(re.sub(rf"^{setting} = .*$", f"{setting} = {value}", config.read_text(), flags=re.M))
    proc = cli("status", "--dsn", "postgresql://nobody@127.0.0.1:1/none", cwd=root)
    assert proc.returncode == 2, proc.stderr
    assert f"{config.resolve()}: {expected}" in proc.stderr, proc.stderr


def test_a_command_below_the_project_root_finds_its_env_file(tmp_path: Path, empty_db: str) -> None:
    """tenantdb.toml is found from a subdirectory of the project, and so is
    the project's .env (init's .gitignore puts it beside tenantdb.toml):
    run from migrations/, the DSN was libpq's defaults, another database."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TENANTDB_PROJECT", "TENANTDB_SQL_DIR")}
    env.update(PGHOST=str(tmp_path / "no-server"), PGPORT="5999", PGCONNECT_TIMEOUT="2")
    root = make_app(tmp_path, files={})
    (root / ".env").write_text(f"DATABASE_URL='{empty_db}'\n")
    name = psycopg.conninfo.conninfo_to_dict(empty_db)["dbname"]
    for where in (root, root / "migrations"):
        proc = cli("status", cwd=where, env=env)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith(f"database {name} on "), proc.stdout
    (root / "migrations/.env").write_text("DATABASE_URL='postgresql://nobody@127.0.0.1:1/here'\n")
    nearest = cli("status", cwd=root / "migrations", env=env)  # the working directory's comes first, as before
    assert nearest.returncode == 3 and "port 1 failed" in nearest.stderr, nearest.stderr


def test_verify_names_an_app_table_that_landed_in_the_bookkeeping_schema(tmp_path: Path, empty_db: str) -> None:
    """Changes run with search_path tenantdb: an app migration's unqualified
    table went into tenantdb's bookkeeping schema (no row-level security,
    no API can reach it), and verify said ok."""
    root = make_app(tmp_path, files={
        "migrations/0001_notes.sql": (
            "create table notes (organization_id uuid not null references tenancy.organizations (id),\n"
            "  id uuid not null default gen_random_uuid(), primary key (organization_id, id));\n"),
        "migrations/0001_notes.rollback.sql": "drop table notes;\n"})
    ok(cli("migrate", "--dsn", empty_db, cwd=root))
    ok(cli("seed", "--dsn", empty_db, cwd=root))
    proc = cli("verify", "--dsn", empty_db, cwd=root)
    assert proc.returncode == 1, proc.stdout
    assert ("covered: tenantdb.notes: table with an organization_id column in tenantdb's bookkeeping schema (where a "
            "migration's unqualified name lands): name the table with its schema, one of app.schemas") in proc.stdout, \
        proc.stdout
    assert proc.stdout.strip().endswith("1 problem(s)")


def test_an_app_migration_without_its_rollback_is_named(tmp_path: Path) -> None:
    """It was "unexpected error: FileNotFoundError ... (rerun with --debug)", exit 1."""
    root = make_app(tmp_path)
    (root / "migrations/0002_folders.sql").write_text("create table app.folders (id int);\n")
    proc = cli("status", "--dsn", "postgresql://nobody@127.0.0.1:1/none", cwd=root)
    assert proc.returncode == 2, proc.stderr
    assert (f"{root.resolve() / 'migrations/0002_folders.sql'} has no migrations/0002_folders.rollback.sql "
            "(tenantdb new migration writes both)") in proc.stderr, proc.stderr
    assert "unexpected error" not in proc.stderr
