"""The CLI as a DBA runs it: help everywhere, one-line errors with exit
codes, dry runs that change nothing, verify that can fail."""

from __future__ import annotations

import json
import subprocess
import sys

import psycopg
import pytest

from conftest import ROOT

from tenantdb.render import Renderer, Target

CLI = [sys.executable, str(ROOT / "cli.py")]
CHANGE_IDS = [c.id for c in Renderer(Target()).changes()]
COMMANDS = ["up", "down", "migrate", "status", "rollback", "seed", "verify", "render", "export", "export sqitch", "export supabase",
            "new", "reset", "adopt", "docs"]


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + list(args), capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    proc = run(*command.split(), "--help")
    assert proc.returncode == 0 and "Usage:" in proc.stdout


def test_unreachable_database_is_exit_3_without_traceback() -> None:
    proc = run("--dsn", "host=127.0.0.1 port=1 dbname=x user=x connect_timeout=2", "status")
    assert proc.returncode == 3
    assert proc.stderr.startswith("tenantdb: cannot connect to the database") and "Traceback" not in proc.stderr


def test_dsn_falls_back_to_database_url(empty_db: str) -> None:
    import os
    proc = run("status", env=dict(os.environ, DATABASE_URL=empty_db))
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0 and lines[0].startswith("database empty_")  # status names the database it read first
    assert lines[1:3] == [f"SQL from {ROOT} (the project checkout)", "pending  0001_foundation"]


def test_dry_run_prints_sql_and_changes_nothing(empty_db: str) -> None:
    proc = run("--dsn", empty_db, "migrate", "--dry-run")
    assert proc.returncode == 0
    assert "create table identity.users" in proc.stdout and "-- change 0004_tenancy" in proc.stdout
    with psycopg.connect(empty_db) as conn:
        assert conn.execute("select count(*) from pg_namespace where nspname in ('tenantdb', 'identity')").fetchone()[0] == 0


def test_migrate_prints_one_line_per_change_then_status_and_verify(empty_db: str) -> None:
    proc = run("--dsn", empty_db, "migrate")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"SQL from {ROOT} (the project checkout)"
    # a line when each change starts, and one when it ends with its duration
    assert lines[1:] == [line for cid in CHANGE_IDS for line in (f"applying {cid} ...", next(l for l in lines if l.startswith(f"applied {cid} (")))]
    assert all(l.endswith(" ms)") for l in lines if l.startswith("applied "))
    assert run("--dsn", empty_db, "migrate").stdout.splitlines()[-1] == "nothing to apply"
    assert run("--dsn", empty_db, "seed").returncode == 0
    seeded = run("--dsn", empty_db, "seed")
    assert seeded.returncode == 0
    proc = run("--dsn", empty_db, "verify", "--json")
    assert proc.returncode == 0, proc.stdout
    assert json.loads(proc.stdout) == {"ok": True, "problems": []}


def test_seed_twice_changes_nothing(dsn: str) -> None:
    query = "select md5(string_agg(t::text, ',' order by t::text)) from (select * from iam.role_permissions) t"
    with psycopg.connect(dsn) as conn:
        before = conn.execute(query).fetchone()[0]
        xmin_before = conn.execute("select max(xmin::text::bigint) from iam.roles").fetchone()[0]
    assert run("--dsn", dsn, "seed").returncode == 0
    with psycopg.connect(dsn) as conn:
        assert conn.execute(query).fetchone()[0] == before
        assert conn.execute("select max(xmin::text::bigint) from iam.roles").fetchone()[0] == xmin_before, "seed rewrote unchanged rows"
        # Seed 002: owner 10, admin 6, member 3, guest 1, support 3, platform admin 5 mappings,
        # usage.record for owner, admin and member, plus every platform permission for
        # superadmin and break-glass.
        platform = conn.execute("select count(*) from iam.permissions where is_platform").fetchone()[0]
        assert platform == 9
        # ... and platform.privacy.manage for platform admins; the CRM's four
        # permissions for owner and admin, crm.read and crm.write for members,
        # crm.read for guests.
        assert conn.execute("select count(*) from iam.role_permissions").fetchone()[0] == 28 + 3 + 1 + 2 * platform + 4 + 4 + 2 + 1


def test_seed_before_migrate_is_refused(empty_db: str) -> None:
    proc = run("--dsn", empty_db, "seed")
    assert proc.returncode == 1 and "run tenantdb migrate first" in proc.stderr


def test_verify_reports_catalog_problems(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("alter table tenancy.invitations no force row level security")
        conn.execute("create function public.leaky() returns int language sql security definer as 'select 1'")
        conn.execute("create table tenancy.no_key (organization_id uuid references tenancy.organizations (id))")
    proc = run("--dsn", dsn, "verify", "--json")
    assert proc.returncode == 1
    found = {(p["check"], p["object"]) for p in json.loads(proc.stdout)["problems"]}
    assert ("rls", "tenancy.invitations") in found
    assert ("definer", "leaky()") in found
    assert ("primary_key", "tenancy.no_key") in found
    assert ("fk_index", "tenancy.no_key") in found
    assert ("rls", "tenancy.no_key") in found


def test_verify_refuses_what_a_scoped_request_could_not_do(dsn: str) -> None:
    """A request scoped to its active organization (role
    organization_scoped) needs a policy wherever a signed-in request has
    one, and exactly authenticated's privileges: verify names a missing
    policy, a missing grant and an extra one, and migrate mirrors the
    grants back."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("drop policy scoped_select on app.projects")
        conn.execute("revoke select on billing.invoices from organization_scoped")
        conn.execute("grant delete on billing.invoices to organization_scoped")
    proc = run("--dsn", dsn, "verify", "--json")
    assert proc.returncode == 1, proc.stdout
    problems = sorted((p["check"], p["object"], p["detail"]) for p in json.loads(proc.stdout)["problems"])
    assert problems == [
        ("rls", "app.projects", "no SELECT policy for role organization_scoped (authenticated has tenant_select): requests scoped to "
                                "an active organization see nothing here; use the policy macros"),
        ("scoped", "billing.invoices", "organization_scoped holds DELETE (authenticated does not): run tenantdb migrate, or select "
                                       "private.mirror_client_grants()"),
        ("scoped", "billing.invoices", "organization_scoped lacks SELECT (authenticated holds it): run tenantdb migrate, or select "
                                       "private.mirror_client_grants()"),
    ], problems
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("select private.mirror_client_grants()")
        assert conn.execute("select count(*) from private.client_grant_differences()").fetchone()[0] == 0


def test_verify_refuses_two_permissive_policies_for_one_role_and_command(dsn: str) -> None:
    """The shape that made every tenant read a sequential scan cannot come back:
    a second permissive SELECT policy for authenticated, and a PUBLIC policy
    FOR ALL (which counts for every role and command), are both reported."""
    clean = run("--dsn", dsn, "verify", "--json")
    assert clean.returncode == 0, clean.stdout
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("create policy staff_too on billing.invoices for select to authenticated "
                     "using ((select private.has_system_permission('platform.tenant.read')))")
        conn.execute("create policy everyone on usage.counters for all using (true)")
    proc = run("--dsn", dsn, "verify", "--json")
    assert proc.returncode == 1
    details = {(p["object"], p["detail"]) for p in json.loads(proc.stdout)["problems"] if p["check"] == "rls"}
    assert any(obj == "billing.invoices" and "SELECT policies for role authenticated: staff_too and tenant_select" in d
               for obj, d in details), details
    assert any(obj == "usage.counters" and "role platform_staff: everyone and platform_select" in d for obj, d in details), details
    assert any(obj == "usage.counters" and "role authenticated: everyone and tenant_select" in d for obj, d in details), details
    assert not any(obj == "billing.subscriptions" for obj, _ in details)


def test_verify_refuses_a_private_helper_open_to_clients(dsn: str) -> None:
    """A private function that answers about any organization, executable
    by authenticated although no policy, view or API function calls it, is
    reported; the shipped schema has none (billing_period was one)."""
    assert run("--dsn", dsn, "verify", "--json").returncode == 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert not conn.execute("select has_function_privilege('authenticated', 'private.billing_period(uuid, timestamptz)', 'execute')").fetchone()[0]
        conn.execute("grant execute on function private.billing_period(uuid, timestamptz) to authenticated")
    proc = run("--dsn", dsn, "verify", "--json")
    assert proc.returncode == 1
    details = [(p["object"], p["detail"]) for p in json.loads(proc.stdout)["problems"] if p["check"] == "definer"]
    assert any(obj.startswith("private.billing_period(") and "no policy, view or API function calls" in d for obj, d in details), details


def test_verify_refuses_a_text_column_without_a_length_bound(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("alter table tenancy.organizations add column motto text")
    proc = run("--dsn", dsn, "verify", "--json")
    assert proc.returncode == 1
    found = {(p["check"], p["object"]) for p in json.loads(proc.stdout)["problems"]}
    assert found == {("bounds", "tenancy.organizations.motto")}, found


def test_verify_reports_citus_shape(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("create table tenancy.projects (organization_id uuid not null references tenancy.organizations (id), "
                     "id uuid primary key, code text unique)")
    proc = run("--dsn", dsn, "verify", "--json")
    details = [p["detail"] for p in json.loads(proc.stdout)["problems"] if p["check"] == "citus"]
    assert any("projects_pkey" in d for d in details) and any("projects_code_key" in d for d in details)


def test_rollback_options_are_exclusive(empty_db: str) -> None:
    proc = run("--dsn", empty_db, "rollback", "--all", "--steps", "1")
    assert proc.returncode == 2 and "choose one of" in proc.stderr


def test_unknown_change_is_a_clear_error(empty_db: str) -> None:
    proc = run("--dsn", empty_db, "migrate", "--to", "9999_nothing")
    assert proc.returncode == 2 and "no such change" in proc.stderr and "Traceback" not in proc.stderr


def test_render_is_the_sql_that_runs(tmp_path) -> None:
    proc = run("--target", "supabase", "render", "--out", str(tmp_path))
    assert proc.returncode == 0
    foundation = (tmp_path / "0001_foundation.sql").read_text()
    assert "tenantdb shim" not in foundation, "the supabase target creates nothing in auth"
    postgres = run("render").stdout
    assert "tenantdb shim" in postgres and "{{" not in postgres and "{%" not in postgres


def test_verify_reports_a_leftover_private_function(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("create function private.old_helper() returns int language sql set search_path = pg_catalog, pg_temp as 'select 1'")
    proc = run("--dsn", dsn, "verify", "--json")
    assert proc.returncode == 1
    assert {"check": "leftover", "object": "private.old_helper()",
            "detail": "function in private that no file of this package defines"} in json.loads(proc.stdout)["problems"]


def test_seed_with_a_team_catalog_updates_without_breaking_subscriptions(dsn: str, tmp_path) -> None:
    doc = json.loads((ROOT / "seeds" / "catalog.json").read_text())
    with psycopg.connect(dsn, autocommit=True) as conn:
        uid = conn.execute("insert into auth.users (email) values ('cat@c.test') returning id").fetchone()[0]
        org = conn.execute("select id from tenancy.organizations where personal_owner_id = %s", (uid,)).fetchone()[0]
        conn.execute("update billing.subscriptions set plan_key = 'business' where organization_id = %s", (org,))
    doc["plans"] = [p for p in doc["plans"] if p["key"] != "business"]
    free = next(p for p in doc["plans"] if p["key"] == "free")
    free["features"]["max_records"]["limit"] = 200
    team = tmp_path / "team.json"
    team.write_text(json.dumps(doc))
    proc = run("--dsn", dsn, "seed", "--catalog", str(team))
    assert proc.returncode == 0, proc.stderr
    assert '"plans_deactivated": ["business"]' in proc.stdout
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select is_active from catalog.plans where key = 'business'").fetchone()[0] is False
        assert conn.execute("select plan_key from billing.subscriptions where organization_id = %s", (org,)).fetchone()[0] == "business"
        assert conn.execute("select limit_value from catalog.plan_features where plan_key = 'free' and feature_key = 'max_records'").fetchone()[0] == 200
    free["features"]["max_widgets"] = {"limit": 1}
    team.write_text(json.dumps(doc))
    proc = run("--dsn", dsn, "seed", "--catalog", str(team))
    assert proc.returncode == 1 and 'names unknown feature "max_widgets"' in proc.stderr and "SQLSTATE 22023" in proc.stderr
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select count(*) from catalog.plan_features where feature_key = 'max_widgets'").fetchone()[0] == 0


def test_verify_fails_for_a_personal_column_missing_from_the_inventory(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("alter table identity.users add column nickname text")
        conn.execute("comment on column identity.users.nickname is '@personal what friends call them'")
    proc = run("--dsn", dsn, "verify", "--json")
    assert proc.returncode == 1
    assert {"check": "personal_data", "object": "identity.users.nickname",
            "detail": "column is tagged @personal but missing from privacy.data_inventory"} in json.loads(proc.stdout)["problems"]


def test_verify_fails_when_an_inventoried_column_loses_its_tag(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("comment on column identity.users.bio is 'About me'")
    proc = run("--dsn", dsn, "verify", "--json")
    assert proc.returncode == 1
    assert {"check": "personal_data", "object": "identity.users.bio",
            "detail": "inventoried column lost its @personal tag"} in json.loads(proc.stdout)["problems"]
