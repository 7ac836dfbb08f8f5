"""verify and docs cover an app project: its tables are checked like the
package's (forced row-level security, keys led by organization_id,
bounded text, personal columns inventoried), a tenant table in a schema
verify does not check is named, every permission and feature a policy,
function or metered table names must be declared by the seeds, and
`tenantdb docs` draws the app's tables with the package's."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from apps import DOCUMENTS, cli, make_app
from conftest import conninfo


def ok(proc) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return proc.stdout


def problems(root: Path, db: str) -> list[dict]:
    """verify --json run in the app project: its problems (exit 1 when there are any, 0 when none)."""
    proc = cli("verify", "--json", "--dsn", db, cwd=root)
    assert "Traceback" not in proc.stderr, proc.stderr
    found = json.loads(proc.stdout)["problems"]
    assert proc.returncode == (1 if found else 0), proc.stdout + proc.stderr
    return found


def checks(found: list[dict]) -> set[tuple[str, str]]:
    return {(p["check"], p["object"]) for p in found}


def set_schemas(root: Path, schemas: list[str]) -> None:
    toml = root / "tenantdb.toml"
    text = toml.read_text()
    assert 'schemas = ["app"]' in text
    toml.write_text(text.replace('schemas = ["app"]', f"schemas = {json.dumps(schemas)}"))


# A second change of the app: its own schema, with a table that breaks each
# rule verify checks on tenant tables (and nothing else).
NOTES = {
    "migrations/0002_notes.sql": """\
{% import 'tenantdb/macros.sql' as m with context %}
create schema shop;
comment on schema shop is 'The shop''s notes.';
grant usage on schema shop to authenticated, service_role;
create table shop.notes (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null references tenancy.organizations (id) on delete cascade,
  body text not null,
  author_email text,
  primary key (id, organization_id),
  constraint notes_author_email_length check (length(author_email) <= 320)
);
comment on table shop.notes is 'Notes of an organization.';
comment on column shop.notes.author_email is '@personal who wrote the note';
create index notes_organization on shop.notes (organization_id);
{{ m.table_grants('shop.notes') }}
alter table shop.notes enable row level security;
""",
    "migrations/0002_notes.rollback.sql": "drop schema shop cascade;\n",
}


@pytest.fixture(scope="module")
def shop(postgresql_proc, tmp_path_factory) -> Iterator[tuple[Path, str]]:
    """An app (documents, and shop.notes in its own schema `shop`, listed in
    app.schemas) migrated and seeded in a database of its own, shared by the
    tests that only read it."""
    root = make_app(tmp_path_factory.mktemp("apps"), files={**DOCUMENTS, **NOTES})
    set_schemas(root, ["app", "shop"])
    name = f"shop_{uuid.uuid4().hex[:10]}"
    admin = conninfo(postgresql_proc.host, postgresql_proc.port, postgresql_proc.user, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    db = conninfo(postgresql_proc.host, postgresql_proc.port, postgresql_proc.user, name)
    ok(cli("migrate", "--dsn", db, cwd=root))
    ok(cli("seed", "--dsn", db, cwd=root))
    yield root, db
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


def test_an_app_migrated_then_seeded_verifies_ok(empty_db: str, tmp_path: Path) -> None:
    """Migrated, not yet seeded: verify says the seeds' rows are missing
    (the app's permissions among them) and nothing else -- a permission the
    app's seeds declare is not reported as undeclared. Seeded: ok."""
    root = make_app(tmp_path)
    ok(cli("migrate", "--dsn", empty_db, cwd=root))
    found = problems(root, empty_db)
    assert {p["check"] for p in found} == {"seeded", "catalog"}, found
    assert ("seeded", "iam.permissions") in checks(found)
    ok(cli("seed", "--dsn", empty_db, cwd=root))
    assert problems(root, empty_db) == []
    assert ok(cli("verify", "--dsn", empty_db, cwd=root)).splitlines()[-1] == "ok"


def test_an_app_table_in_a_listed_schema_is_checked_like_the_packages(shop: tuple[Path, str]) -> None:
    root, db = shop
    found = problems(root, db)
    assert checks(found) == {
        ("rls", "shop.notes"),
        ("citus", "shop.notes"),
        ("bounds", "shop.notes.body"),
        ("personal_data", "shop.notes.author_email"),
    }, found
    detail = {(p["check"], p["object"]): p["detail"] for p in found}
    assert detail[("rls", "shop.notes")] == "row level security is not forced"
    assert detail[("citus", "shop.notes")].startswith("primary key notes_pkey does not start with organization_id")
    assert "add a check constraint notes_body_length" in detail[("bounds", "shop.notes.body")]
    assert "missing from privacy.data_inventory" in detail[("personal_data", "shop.notes.author_email")]
    # the text output names them too, and fails
    proc = cli("verify", "--dsn", db, cwd=root)
    assert proc.returncode == 1 and "rls: shop.notes: row level security is not forced" in proc.stdout
    assert proc.stdout.splitlines()[-1] == "4 problem(s)"


def test_a_tenant_table_in_a_schema_not_listed_is_named_as_not_covered(shop: tuple[Path, str], tmp_path: Path) -> None:
    """The same database seen from a copy of the app that does not list
    `shop`: the checks of tenant tables do not read shop.notes, and verify
    says so instead of saying ok."""
    root, db = shop
    other = shutil.copytree(root, tmp_path / "shop")
    toml = other / "tenantdb.toml"
    toml.write_text(toml.read_text().replace('schemas = ["app", "shop"]', 'schemas = ["app"]'))
    found = problems(other, db)
    # (@personal columns are inventoried wherever they are)
    assert checks(found) == {("covered", "shop.notes"), ("personal_data", "shop.notes.author_email")}, found
    covered = next(p["detail"] for p in found if p["check"] == "covered")
    assert "schema shop, which verify does not check" in covered and "app.schemas" in covered


def test_docs_in_an_app_project_draws_the_apps_tables_with_the_packages(shop: tuple[Path, str], tmp_path: Path) -> None:
    root, db = shop
    out = tmp_path / "docs"
    assert ok(cli("docs", str(out), "--dsn", db, cwd=root)).startswith("wrote ")
    index = (out / "README.md").read_text()
    assert "[`shop`](shop.md)" in index and "[`tenancy`](tenancy.md)" in index
    assert "The schemas the app project lists (`tenantdb.toml`, `app.schemas`) are domain schemas too" in index
    page = (out / "shop.md").read_text()
    assert "# Schema `shop`" in page and "The shop's notes." in page
    assert "### shop.notes" in page and "erDiagram" in page
    assert "shop.notes" in (out / "access.md").read_text()
    assert "### app.documents" in (out / "app.md").read_text()
    # The package alone (no app project) documents its own schemas only
    alone = tmp_path / "alone"
    ok(cli("docs", str(alone), "--dsn", db, cwd=tmp_path))
    assert not (alone / "shop.md").exists()
    assert "app.schemas" not in (alone / "README.md").read_text()
    assert sorted(p.name for p in alone.iterdir()) == sorted(p.name for p in out.iterdir() if p.name != "shop.md")


def test_a_policy_naming_an_undeclared_permission_fails_verify_until_declared_and_seeded(dsn: str, tmp_path: Path) -> None:
    """The issue's case: policies name document.create (and update, delete),
    which nobody declared. verify said ok, and owners were refused."""
    root = make_app(tmp_path, files={**DOCUMENTS, "seeds/permissions.json": json.dumps({"permissions": []})})
    ok(cli("migrate", "--dsn", dsn, cwd=root))
    ok(cli("seed", "--dsn", dsn, cwd=root))
    found = problems(root, dsn)
    assert [(p["check"], p["object"]) for p in found] == [("undeclared", "app.documents")] * 3, found
    assert sorted(p["detail"] for p in found) == [
        f"policies scoped_{command}, tenant_{command} name permission document.{verb}, which no seed declares: "
        "add it to seeds/permissions.json of the app (with the roles that hold it), then run tenantdb seed"
        for command, verb in (("delete", "delete"), ("insert", "create"), ("update", "update"))]
    proc = cli("verify", "--dsn", dsn, cwd=root)
    assert proc.returncode == 1
    assert "undeclared: app.documents: policies scoped_insert, tenant_insert name permission document.create" in proc.stdout
    # Declared, not yet seeded: the seeds' rows are missing, nothing is undeclared
    (root / "seeds/permissions.json").write_text(DOCUMENTS["seeds/permissions.json"])
    assert checks(problems(root, dsn)) == {("seeded", "iam.permissions"), ("seeded", "iam.role_permissions")}
    ok(cli("seed", "--dsn", dsn, cwd=root))
    assert problems(root, dsn) == []


def test_a_metered_table_whose_feature_or_meter_the_catalog_lacks_is_reported(dsn: str, tmp_path: Path) -> None:
    empty = {"meters": [], "features": [], "plans": []}
    root = make_app(tmp_path, files={**DOCUMENTS, "seeds/catalog.json": json.dumps(empty)})
    ok(cli("migrate", "--dsn", dsn, cwd=root))
    ok(cli("seed", "--dsn", dsn, cwd=root))
    found = problems(root, dsn)
    assert found == [{"check": "undeclared", "object": "app.documents",
                      "detail": "trigger gate_and_meter counts feature max_documents, which the seeded catalog does not "
                                "declare: add it to seeds/catalog.json of the app (a limit with a meter of aggregation "
                                "live_count), then run tenantdb seed"}]
    # declared, with a meter that sums: every insert would be refused (22023)
    catalog = json.loads(DOCUMENTS["seeds/catalog.json"])
    catalog["meters"] = [{"key": "documents_summed", "name": "Documents", "unit": "document", "aggregation": "sum"}]
    catalog["features"][0]["meter"] = "documents_summed"
    (root / "seeds/catalog.json").write_text(json.dumps(catalog))
    ok(cli("seed", "--dsn", dsn, cwd=root))
    found = problems(root, dsn)
    assert checks(found) == {("undeclared", "app.documents")}, found
    assert "whose meter documents_summed aggregates sum, not live_count" in found[0]["detail"]
    (root / "seeds/catalog.json").write_text(DOCUMENTS["seeds/catalog.json"])
    ok(cli("seed", "--dsn", dsn, cwd=root))
    assert problems(root, dsn) == []


ARCHIVE = """\
{% import 'tenantdb/macros.sql' as m with context %}
{{ m.metered('app.documents', 'max_documents') }}
{{ m.updated_at('app.documents') }}
create or replace function app.archive_document(p_organization_id uuid)
  returns void
  language plpgsql
  {{ m.pinned() }}
as $fn$
begin
  perform private.require_permission(p_organization_id, 'document.archive');
  perform private.check_feature_access(auth.uid(), 'max_archives', p_organization_id);
  perform pg_catalog.length('not.a_permission.call');  -- a literal outside a permission check: not a name
end
$fn$;
comment on function app.archive_document is 'Archives the organization''s documents.';
revoke all on function app.archive_document from public, anon;
"""


def test_names_in_function_bodies_and_platform_policies_are_checked(dsn: str, tmp_path: Path) -> None:
    root = make_app(tmp_path, files={
        **DOCUMENTS, "functions/0001_documents.sql": ARCHIVE,
        "policies/0001_documents.sql": DOCUMENTS["policies/0001_documents.sql"]
        + "{{ m.platform_read('app.documents', 'platform.documents.read') }}\n"})
    ok(cli("migrate", "--dsn", dsn, cwd=root))
    ok(cli("seed", "--dsn", dsn, cwd=root))
    found = sorted(problems(root, dsn), key=lambda p: p["detail"])
    assert [(p["check"], p["object"]) for p in found] == [
        ("undeclared", "app.archive_document(uuid)"), ("undeclared", "app.archive_document(uuid)"),
        ("undeclared", "app.documents")], found
    assert found[0]["detail"].startswith("its body names feature max_archives, which the seeded catalog does not declare")
    assert found[1]["detail"].startswith("its body names permission document.archive, which no seed declares: "
                                         "add it to seeds/permissions.json of the app")
    assert found[2]["detail"].startswith("policy platform_select names platform permission platform.documents.read, "
                                         "which no seed declares: platform permissions are the package's")


def test_seeds_that_fail_are_reported_and_the_names_still_checked(dsn: str, tmp_path: Path) -> None:
    """A seed that fails: verify says the seeds cannot run, and checks the
    names against the database as it is (the app's permissions were never
    seeded), instead of failing in an aborted transaction."""
    root = make_app(tmp_path)
    ok(cli("migrate", "--dsn", dsn, cwd=root))
    (root / "seeds/0001_broken.sql").write_text("select 1 / 0;\n")
    found = problems(root, dsn)
    assert [p for p in found if p["check"] == "seeded"] == [
        {"check": "seeded", "object": found[0]["object"], "detail": found[0]["detail"]}], found
    assert "the seeds cannot run here" in found[0]["detail"] and "shop:seeds/0001_broken.sql" in found[0]["detail"]
    assert checks(found) == {("seeded", found[0]["object"]), ("undeclared", "app.documents")}, found
