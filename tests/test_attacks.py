"""Attacks that need more than one session or a hostile session setup."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import psycopg
import pytest

from conftest import ROOT

CLI = [sys.executable, str(ROOT / "cli.py")]


def act_as(conn: psycopg.Connection, uid: str) -> None:
    conn.execute("select set_config('request.jwt.claims', %s, false), set_config('role', 'authenticated', false)",
                 (json.dumps({"sub": uid, "role": "authenticated"}),))


def new_user(conn: psycopg.Connection, email: str) -> str:
    return str(conn.execute("insert into auth.users (email) values (%s) returning id", (email,)).fetchone()[0])


def test_pg_temp_objects_cannot_hijack_definer_functions(dsn: str) -> None:
    """With search_path = '' Postgres would still resolve types in the
    caller's pg_temp; the definer functions name pg_temp last."""
    with psycopg.connect(dsn, autocommit=True) as admin:
        mallory = new_user(admin, "mallory@evil.test")
        admin.execute("create table public.hijacked (who text)")
        admin.execute("grant insert on public.hijacked to public")
    with psycopg.connect(dsn, autocommit=True) as conn:
        act_as(conn, mallory)
        conn.execute("create function pg_temp.evil(x pg_catalog.uuid) returns boolean language sql as "
                     "$$ insert into public.hijacked values (current_user); select true $$")
        conn.execute("create domain pg_temp.uuid as pg_catalog.uuid check (pg_temp.evil(value))")
        conn.execute("create domain pg_temp.text as pg_catalog.text check (pg_temp.evil(null))")
        conn.execute("select public.create_organization('Mallory', 'mallory-org')")
        conn.execute("select count(*) from public.invite_member((select id from tenancy.organizations where slug = 'mallory-org'), 'x@y.test')")
    with psycopg.connect(dsn) as admin:
        assert admin.execute("select count(*) from public.hijacked").fetchone()[0] == 0
        assert admin.execute("select count(*) from tenancy.organizations where slug = 'mallory-org'").fetchone()[0] == 1


def test_two_owners_leaving_at_once_leave_one_owner(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as admin:
        ann, ben = new_user(admin, "ann@co.test"), new_user(admin, "ben@co.test")
        act_as(admin, ann)
        org = admin.execute("select public.create_organization('Co', 'co')").fetchone()[0]
        admin.execute("reset role")
        admin.execute("insert into tenancy.memberships (organization_id, user_id, role_key) values (%s, %s, 'tenant_owner')", (org, ben))
    first, second = psycopg.connect(dsn), psycopg.connect(dsn)
    try:
        act_as(first, ann)
        act_as(second, ben)
        first.execute("select public.leave_organization(%s)", (org,))
        second.execute("select public.leave_organization(%s)", (org,))
        # Both owner checks run before either commits.
        first.execute("set constraints all immediate")
        outcome: dict[str, object] = {}

        def check_second() -> None:
            try:
                second.execute("set constraints all immediate")
                second.commit()
                outcome["second"] = "committed"
            except psycopg.Error as exc:
                outcome["second"] = exc.sqlstate
                second.rollback()

        worker = threading.Thread(target=check_second)
        worker.start()
        time.sleep(0.5)
        assert worker.is_alive(), "the second owner check did not wait for the first"
        first.commit()
        worker.join(timeout=30)
        assert outcome["second"] == "23514"
    finally:
        first.close()
        second.close()
    with psycopg.connect(dsn) as admin:
        owners = admin.execute("select count(*) from tenancy.memberships where organization_id = %s and role_key = 'tenant_owner'", (org,)).fetchone()[0]
    assert owners == 1


def test_migrating_role_must_bypass_rls(empty_db: str) -> None:
    with psycopg.connect(empty_db, autocommit=True) as admin:
        admin.execute("drop role if exists tenantdb_weak_migrator")
        admin.execute("create role tenantdb_weak_migrator login nobypassrls")
        dbname = admin.info.dbname
        admin.execute(f'grant create on database "{dbname}" to tenantdb_weak_migrator')
        admin.execute("grant create on schema public to tenantdb_weak_migrator")
    weak = empty_db.replace("user=postgres", "user=tenantdb_weak_migrator")
    try:
        proc = subprocess.run(CLI + ["--dsn", weak, "migrate"], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1
        assert "must be migrated by a role that bypasses row level security" in proc.stderr and "SQLSTATE 42501" in proc.stderr
        with psycopg.connect(empty_db) as admin:
            assert admin.execute("select to_regnamespace('identity') is null").fetchone()[0]
    finally:
        with psycopg.connect(empty_db, autocommit=True) as admin:
            admin.execute("drop owned by tenantdb_weak_migrator cascade")
            admin.execute("drop role tenantdb_weak_migrator")


def test_other_target_is_refused(dsn: str) -> None:
    proc = subprocess.run(CLI + ["--dsn", dsn, "--target", "supabase", "migrate"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "migrated with --target postgres" in proc.stderr
