"""The sqitch export deploys and reverts with the real sqitch; the Supabase
export applies, in order, to a database shaped like a Supabase project."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import psycopg

from conftest import TESTS, pg_tool
from tenantdb import export
from tenantdb.engine import Engine
from tenantdb.render import Renderer, Target


def dump(dsn: str, *exclude: str) -> str:
    from test_engine import schema_dump

    return schema_dump(dsn, *exclude)


def sqitch_uri(dsn: str) -> str:
    parts = dict(p.split("=", 1) for p in dsn.split())
    return f"db:pg://{parts['user']}@{parts['host']}:{parts['port']}/{parts['dbname']}"


def test_sqitch_export_deploys_and_reverts(empty_db_factory, tmp_path: Path) -> None:
    via_tenantdb, via_sqitch = empty_db_factory(), empty_db_factory()
    Engine(via_tenantdb, Renderer(Target()), echo=lambda _l: None).migrate()
    project = tmp_path / "sqitch"
    export.sqitch(Renderer(Target()).changes(), project)
    env = dict(os.environ, HOME=str(tmp_path), SQITCH_FULLNAME="CI", SQITCH_EMAIL="ci@localhost")
    for command in (["deploy", "--verify"], ["verify"]):
        proc = subprocess.run(["sqitch", *command, sqitch_uri(via_sqitch)], cwd=project, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert dump(via_sqitch, "sqitch", "tenantdb") == dump(via_tenantdb, "sqitch", "tenantdb")
    proc = subprocess.run(["sqitch", "revert", "-y", sqitch_uri(via_sqitch)], cwd=project, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with psycopg.connect(via_sqitch) as conn:
        left = conn.execute("select array_agg(nspname::text order by nspname) from pg_namespace "
                            "where nspname not like 'pg\\_%' and nspname <> 'information_schema'").fetchone()[0]
    assert left == ["public", "sqitch"]


def test_supabase_export_applies_to_a_supabase_shaped_database(empty_db: str, tmp_path: Path) -> None:
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute((TESTS / "fixtures" / "supabase_like_auth.sql").read_text().encode())
    files = export.supabase(Renderer(Target("supabase")).changes(), tmp_path)
    assert [f.name[:14] for f in files] == sorted(f.name[:14] for f in files)
    assert all(f.parent == tmp_path / "supabase" / "migrations" for f in files)
    for path in files:
        proc = subprocess.run([pg_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", empty_db, "-f", str(path)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, f"{path.name}: {proc.stderr}"
    with psycopg.connect(empty_db, autocommit=True) as conn:
        assert conn.execute("select obj_description('auth'::regnamespace, 'pg_namespace')").fetchone()[0] == "Supabase auth"
        assert conn.execute("select to_regclass('identity.sessions') is null").fetchone()[0], "self-hosted auth tables are postgres-only"
        uid = conn.execute("insert into auth.users (id, email, raw_user_meta_data) values (gen_random_uuid(), 'sb@x.test', '{}') returning id").fetchone()[0]
        assert conn.execute("select count(*) from tenancy.organizations where personal_owner_id = %s", (uid,)).fetchone()[0] == 1
        # Supabase's default grants on public functions are revoked: anon cannot call the API.
        assert not conn.execute("select has_function_privilege('anon', 'public.create_organization(text, text, text)', 'execute')").fetchone()[0]
        assert conn.execute("select has_function_privilege('authenticated', 'public.create_organization(text, text, text)', 'execute')").fetchone()[0]
