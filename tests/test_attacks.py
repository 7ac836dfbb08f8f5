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
        with psycopg.connect(dsn, autocommit=True) as admin:  # a plan with a seat for the invitee (free has one)
            admin.execute("select public.change_subscription_plan(id, 'pro') from tenancy.organizations where slug = 'mallory-org'")
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
    assert proc.returncode == 2 and "migrated with --target postgres" in proc.stderr  # a usage error (docs/cli.md: exit codes)


APPEND_ONLY = ["audit.platform_actions", "audit.security_events", "audit.impersonation_sessions", "audit.impersonation_endings",
               "audit.break_glass_events", "audit.incidents", "audit.incident_updates", "privacy.consents", "privacy.erasures",
               "usage.events", "usage.idempotency_keys", "billing.credit_ledger"]


def test_a_user_who_touched_every_domain_can_delete_their_account(dsn: str) -> None:
    """Account deletion (Supabase's admin API deletes the auth.users row)
    succeeds for a user who was invited and accepted, invited someone,
    granted and revoked platform roles, impersonated and was impersonated,
    broke glass, opened an incident, consented, asked for their data,
    recorded usage and was billed; every append-only record stays."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        owner, dana, other = new_user(conn, "owner@del.test"), new_user(conn, "dana@del.test"), new_user(conn, "other@del.test")

        def as_user(uid: str, query: str, params: tuple = ()) -> object:
            with conn.transaction():
                conn.execute("select set_config('request.jwt.claims', %s, true), set_config('role', 'authenticated', true)",
                             (json.dumps({"sub": uid, "role": "authenticated"}),))
                return conn.execute(query, params).fetchone()

        org = as_user(owner, "select public.create_organization('Del', 'del-org')")[0]
        conn.execute("select public.change_subscription_plan(%s, 'pro')", (org,))  # seats for dana and her invitee
        token = as_user(owner, "select token from public.invite_member(%s, 'dana@del.test', 'tenant_admin')", (org,))[0]
        as_user(dana, "select public.accept_invitation(%s)", (token,))
        as_user(dana, "select count(*) from public.invite_member(%s, 'friend@del.test')", (org,))
        conn.execute("insert into iam.system_role_grants (user_id, role_key, reason) values (%s, 'platform_support', 'staff')", (other,))
        as_user(other, "select public.start_impersonation(%s, 'support ticket 8', 30)", (dana,))
        conn.execute("insert into iam.system_role_grants (user_id, role_key, reason, granted_by) values (%s, 'platform_superadmin', 'staff', %s), "
                     "(%s, 'platform_break_glass', 'staff', %s)", (dana, other, dana, other))
        third = new_user(conn, "third@del.test")
        as_user(dana, "select public.start_impersonation(%s, 'support ticket 7', 30)", (third,))
        as_user(dana, "select public.end_impersonation()")
        as_user(dana, "select public.activate_break_glass('database is on fire', 30)")
        incident = as_user(dana, "select public.open_incident('Outage', 'low')")[0]
        as_user(dana, "select public.update_incident(%s, 'investigating', 'looking')", (incident,))
        as_user(dana, "select public.give_consent('marketing', 'v1')")
        as_user(dana, "select public.submit_subject_request('access')")
        as_user(dana, "select count(*) from public.record_usage(%s, 'api_call', 5, 'dana-1')", (org,))
        personal = conn.execute("select id from tenancy.organizations where personal_owner_id = %s", (dana,)).fetchone()[0]
        conn.execute("select public.record_one_off_payment(%s, 'stripe', 'pi_dana', 5000, 'USD', 'topup', 'succeeded')", (personal,))
        conn.execute("insert into iam.system_role_grants (user_id, role_key, reason, granted_by) values (%s, 'platform_admin', 'help', %s)",
                     (third, dana))
        conn.execute("update iam.system_role_grants set revoked_at = now(), revoked_by = %s, revoke_reason = 'done' "
                     "where user_id = %s and role_key = 'platform_support'", (dana, other))
        before = {t: conn.execute(f"select count(*) from {t}").fetchone()[0] for t in APPEND_ONLY}
        assert all(before[t] > 0 for t in ("audit.impersonation_sessions", "audit.break_glass_events", "audit.incidents",
                                           "privacy.consents", "usage.events", "billing.credit_ledger")), before

        conn.execute("delete from auth.users where id = %s", (dana,))

        assert conn.execute("select count(*) from identity.users where id = %s", (dana,)).fetchone()[0] == 0
        after = {t: conn.execute(f"select count(*) from {t}").fetchone()[0] for t in APPEND_ONLY}
        assert {t: after[t] for t in APPEND_ONLY if t != "audit.platform_actions"} == \
               {t: before[t] for t in APPEND_ONLY if t != "audit.platform_actions"}, "append-only records were lost"
        assert after["audit.platform_actions"] >= before["audit.platform_actions"], "audit rows were lost"
        assert conn.execute("select count(*) from tenancy.invitations where accepted_at is not null and accepted_by is null "
                            "and organization_id = %s", (org,)).fetchone()[0] == 1, "the accepted invitation stays, its acceptor gone"
