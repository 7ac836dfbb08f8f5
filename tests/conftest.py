"""Test harness: a PostgreSQL 15 started by pytest-postgresql (as an
unprivileged user when we are root), a template database migrated and
seeded once, and a fresh clone of it for every test."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pytest_postgresql import factories

from tenantdb.engine import Engine
from tenantdb.render import Renderer, Target

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def _pg_bindir() -> Path:
    """PostgreSQL 15 (Supabase's major): TENANTDB_PG_BINDIR, Debian's path, or pg_config."""
    if os.environ.get("TENANTDB_PG_BINDIR"):
        return Path(os.environ["TENANTDB_PG_BINDIR"])
    debian = Path("/usr/lib/postgresql/15/bin")
    if debian.is_dir():
        return debian
    return Path(subprocess.check_output(["pg_config", "--bindir"], text=True).strip())


PG_BINDIR = _pg_bindir()
os.environ["TENANTDB_PG_BINDIR"] = str(PG_BINDIR)  # read by tests/bin/pg_ctl-as-postgres


def _pg_ctl() -> str:
    if os.geteuid() == 0:
        return str(TESTS / "bin" / "pg_ctl-as-postgres")
    return str(PG_BINDIR / "pg_ctl")


def conninfo(host: str, port: int, user: str, dbname: str, password: str | None = None) -> str:
    info = f"host={host} port={port} user={user} dbname={dbname}"
    return info + (f" password={password}" if password else "")


def build_template(host: str, port: int, user: str, dbname: str, password: str | None = None, **_: object) -> None:
    """Migrate and seed the template every test database is cloned from."""
    dsn = conninfo(host, port, user, dbname, password)
    engine = Engine(dsn, Renderer(Target()), echo=lambda _line: None)
    engine.migrate()
    engine.seed()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("create extension if not exists pgtap")


# pg_cron, where the server has it (Debian's postgresql-15-cron; scripts/test.sh
# installs it): preloaded, and allowed in the one database test_crm.py uses.
CRON_DATABASE = "cron_test"
HAS_PG_CRON = (PG_BINDIR.parent / "lib" / "pg_cron.so").exists()
postgresql_proc = factories.postgresql_proc(
    executable=_pg_ctl(), load=[build_template],
    postgres_options=f"-c shared_preload_libraries=pg_cron -c cron.database_name={CRON_DATABASE}" if HAS_PG_CRON else "")
postgresql = factories.postgresql("postgresql_proc")


@pytest.fixture
def dsn(postgresql: psycopg.Connection) -> str:
    """Conninfo of this test's fresh, migrated and seeded database."""
    info = postgresql.info
    return conninfo(info.host, info.port, info.user, info.dbname)


def scratch_database(proc, prefix: str = "empty", template: str | None = None) -> Iterator[str]:
    """Conninfo of a new database on the harness's server (empty, or a copy
    of template), dropped when the generator is closed: the body of the
    fixtures that hand a test a database of its own."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = conninfo(proc.host, proc.port, proc.user, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'create database "{name}"' + (f' template "{template}"' if template else ""))
    yield conninfo(proc.host, proc.port, proc.user, name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture
def empty_db(postgresql_proc) -> Iterator[str]:
    """Conninfo of a new, empty database (for engine tests)."""
    yield from scratch_database(postgresql_proc)


@pytest.fixture
def empty_db_factory(postgresql_proc) -> Iterator:
    """Make any number of empty databases; all dropped afterwards."""
    admin = conninfo(postgresql_proc.host, postgresql_proc.port, postgresql_proc.user, "postgres")
    made: list[str] = []

    def make() -> str:
        name = f"empty_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'create database "{name}"')
        made.append(name)
        return conninfo(postgresql_proc.host, postgresql_proc.port, postgresql_proc.user, name)

    yield make
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in made:
            conn.execute(f'drop database if exists "{name}" with (force)')


def pg_major() -> int:
    """The major version of the server binaries under test."""
    out = subprocess.check_output([str(PG_BINDIR / "postgres"), "--version"], text=True)
    match = re.search(r"\(PostgreSQL\) (\d+)", out)
    assert match, out
    return int(match.group(1))


def pg_tool(name: str) -> str:
    """A client binary of the server under test (psql, pg_dump)."""
    path = PG_BINDIR / name
    return str(path) if path.exists() else (shutil.which(name) or name)


@pytest.fixture(scope="session")
def pgbouncer(postgresql_proc) -> Iterator:
    """pgbouncer (pool_mode = transaction, 4 server connections) in front of
    the harness's server: .conninfo(dbname) or .reroute(dsn) reach any of its
    databases through the pool; .with_mode("session") is a second instance.
    Fails, never skips, without pgbouncer: scripts/test.sh installs it."""
    from servers import start_pgbouncer

    bouncer = start_pgbouncer(postgresql_proc.host, postgresql_proc.port, user=postgresql_proc.user)
    yield bouncer
    bouncer.stop()


@pytest.fixture(scope="session")
def standby(postgresql_proc, tmp_path_factory) -> Iterator:
    """A streaming hot standby of the harness's server (pg_basebackup -R,
    tests/standby.py): .conninfo(dbname) or .reroute(dsn) reach a database
    there, .wait_for_replay() waits until it has replayed the primary's
    current WAL position. Stopped at the end of the session."""
    from standby import start_standby

    server = start_standby(postgresql_proc.host, postgresql_proc.port, postgresql_proc.user, PG_BINDIR,
                           tmp_path_factory.mktemp("standby"), password=postgresql_proc.password)
    yield server
    server.stop()


# -- app projects (tests/apps.py): the documents recipe in app "shop" -----------
@pytest.fixture(scope="session")
def app_templates(postgresql_proc, tmp_path_factory) -> Iterator[dict[str, str]]:
    """Two template databases of the documents recipe (tests/apps.py), made
    once through the CLI: "migrated" (package and app applied) and "seeded"
    (then seeded). Tests get copies (app_db, app_migrated_db)."""
    from apps import cli, make_app

    admin = conninfo(postgresql_proc.host, postgresql_proc.port, postgresql_proc.user, "postgres")
    root = make_app(tmp_path_factory.mktemp("app-template"))
    names = {"migrated": f"app_migrated_{uuid.uuid4().hex[:8]}", "seeded": f"app_seeded_{uuid.uuid4().hex[:8]}"}
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'create database "{names["migrated"]}"')
    migrated = conninfo(postgresql_proc.host, postgresql_proc.port, postgresql_proc.user, names["migrated"])
    proc = cli("migrate", "--dsn", migrated, cwd=root)
    assert proc.returncode == 0, proc.stderr
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'create database "{names["seeded"]}" template "{names["migrated"]}"')
    proc = cli("seed", "--dsn", conninfo(postgresql_proc.host, postgresql_proc.port, postgresql_proc.user, names["seeded"]),
               cwd=root)
    assert proc.returncode == 0, proc.stderr
    yield names
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in names.values():
            conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture
def app_db(tmp_path: Path, postgresql_proc, app_templates: dict[str, str]) -> Iterator[tuple[Path, str]]:
    """(an app project with the documents recipe, a database where it is migrated and seeded)."""
    from apps import make_app

    root = make_app(tmp_path)
    yield from ((root, dsn) for dsn in scratch_database(postgresql_proc, "app", app_templates["seeded"]))


@pytest.fixture
def app_migrated_db(tmp_path: Path, postgresql_proc, app_templates: dict[str, str]) -> Iterator[tuple[Path, str]]:
    """(an app project with the documents recipe, a database where it is migrated, not seeded)."""
    from apps import make_app

    root = make_app(tmp_path)
    yield from ((root, dsn) for dsn in scratch_database(postgresql_proc, "app", app_templates["migrated"]))
