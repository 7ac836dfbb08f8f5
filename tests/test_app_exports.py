"""Exports and adopt in an app project: `export sqitch` writes the app's
changes as a sqitch project of its own that requires the package's (deployed
and reverted with the real sqitch), `export supabase` numbers the app's
migrations after the package's, seed.sql is the merged seed `tenantdb seed`
loads, and `tenantdb adopt` takes over both histories."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import psycopg

from apps import DOCUMENTS, cli, make_app
from conftest import TESTS, pg_tool
from tenantdb import export
from tenantdb.project import load
from tenantdb.render import Renderer, Target
from test_adopt import assert_adopted, psql_file, scalar
from test_exports import sqitch_uri

PACKAGE = Renderer(Target()).changes()
LAST = PACKAGE[-1].id

# A second app migration, naming the package change it needs (the first names none).
NOTES = {
    "migrations/0002_recent.sql": (
        "-- tenantdb: requires 0004_tenancy\n"
        "create index documents_recent on app.documents (organization_id, created_at desc);\n"
        "comment on index app.documents_recent is 'The newest documents of an organization first.';\n"),
    "migrations/0002_recent.rollback.sql": "drop index app.documents_recent;\n",
}


def app_project(tmp_path: Path) -> tuple[Path, list]:
    """The documents app with a second migration; (its root, every change: the package's, then the app's)."""
    root = make_app(tmp_path, files={**DOCUMENTS, **NOTES})
    return root, Renderer(Target(), app=load(root)).changes()


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return proc.stdout


def sqitch(*args: str, cwd: Path, dsn: str, home: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, HOME=str(home), SQITCH_FULLNAME="CI", SQITCH_EMAIL="ci@localhost")
    return subprocess.run(["sqitch", *args, sqitch_uri(dsn)], cwd=cwd, env=env, capture_output=True, text=True)


def plan_lines(path: Path) -> list[str]:
    return [line.split(" 2026-")[0] for line in path.read_text().splitlines() if line and line[0].isalnum()]


def then_both_histories_are_managed(root: Path, db: str, app_ids: list[str], *options: str) -> None:
    """verify ok, status lists both histories applied, and `tenantdb seed`
    finds nothing left to write: the exported seed.sql loaded the same."""
    assert ok(cli("verify", "--dsn", db, *options, cwd=root)).splitlines()[-1] == "ok"
    out = ok(cli("status", "--dsn", db, *options, cwd=root))
    assert f"(the package): {len(PACKAGE)} applied, 0 pending" in out, out
    assert f"app shop ({root.resolve()}): {len(app_ids)} applied, 0 pending" in out, out
    assert all(f"applied  {cid}" in out for cid in app_ids) and "pending  " not in out and "changed  " not in out, out
    out = ok(cli("seed", "--dsn", db, *options, cwd=root))
    catalog = next(line for line in out.splitlines() if line.startswith("seeded catalog.json + shop:seeds/catalog.json: "))
    written = json.loads(catalog.split(": ", 1)[1].rsplit(" (", 1)[0])
    assert all(v in (0, []) for v in written.values()), catalog
    assert "seeded shop:seeds/permissions.json: 0 permission(s) written" in out, out


def test_render_writes_the_apps_files_in_a_folder_of_its_name(tmp_path: Path) -> None:
    root, changes = app_project(tmp_path)
    ok(cli("render", "--out", str(tmp_path / "out"), cwd=root))
    assert (tmp_path / "out" / f"{LAST}.sql").is_file()
    assert sorted(p.name for p in (tmp_path / "out" / "shop").iterdir()) == [
        "0001_documents.rollback.sql", "0001_documents.sql", "0002_recent.rollback.sql", "0002_recent.sql"]
    assert (tmp_path / "out" / "shop" / "0001_documents.sql").read_text() == export.deploy_sql(changes[-2])


def test_sqitch_export_deploys_as_two_projects_is_adopted_and_reverts(empty_db: str, tmp_path: Path) -> None:
    root, changes = app_project(tmp_path)
    out = tmp_path / "sqitch"
    proc = cli("export", "sqitch", str(out), cwd=root)
    assert "the app's sqitch project: " in ok(proc)
    # the app change naming no package change is pointed out (its plan entry follows the package's newest)
    assert [line.split()[1] for line in proc.stderr.splitlines() if line.startswith("note: ")] == \
        ["shop:migrations/0001_documents.sql"], proc.stderr
    # The package's project is the one a plain export writes, byte for byte.
    plain = tmp_path / "plain"
    export.sqitch(PACKAGE, plain)
    for name in ("sqitch.conf", "sqitch.plan", f"deploy/{LAST}.sql", f"revert/{LAST}.sql", f"verify/{LAST}.sql"):
        assert (out / name).read_text() == (plain / name).read_text(), name
    # The app's: a project of its own, each change requiring the package's it names (else its last) across projects.
    assert "%project=shop\n" in (out / "shop" / "sqitch.plan").read_text()
    assert plan_lines(out / "shop" / "sqitch.plan") == [
        f"0001_documents [tenantdb:{LAST}]", "0002_recent [0001_documents tenantdb:0004_tenancy]"]
    assert sorted(p.name for p in (out / "shop" / "deploy").iterdir()) == ["0001_documents.sql", "0002_recent.sql"]

    # sqitch refuses the app's project before the package's is deployed.
    refused = sqitch("deploy", cwd=out / "shop", dsn=empty_db, home=tmp_path)
    assert refused.returncode != 0 and f"Missing required changes: tenantdb:{LAST} tenantdb:0004_tenancy" in \
        refused.stdout + refused.stderr, refused.stdout + refused.stderr
    assert scalar(empty_db, "select to_regclass('app.documents') is null")
    for project in (out, out / "shop"):
        proc = sqitch("deploy", "--verify", cwd=project, dsn=empty_db, home=tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr

    # seed.sql is the merged seed; it refuses, writing nothing, an app permission that is the package's.
    seed = (out / "seed.sql").read_text()
    assert "max_documents" in seed and "document.create" in seed and "tenantdb.app_permissions" in seed
    permissions = json.loads(DOCUMENTS["seeds/permissions.json"])
    permissions["permissions"].append({"key": "project.create", "description": "Mine.", "roles": ["tenant_owner"]})
    (root / "seeds/permissions.json").write_text(json.dumps(permissions))
    ok(cli("export", "sqitch", str(tmp_path / "bad"), cwd=root))
    (root / "seeds/permissions.json").write_text(DOCUMENTS["seeds/permissions.json"])
    proc = subprocess.run([pg_tool("psql"), "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-d", empty_db, "-f",
                           str(tmp_path / "bad" / "seed.sql")], capture_output=True, text=True)
    assert proc.returncode != 0 and "shop:seeds/permissions.json: permission(s) project.create already exist and are " \
        "not shop's" in proc.stderr, proc.stderr
    assert scalar(empty_db, "select count(*) from catalog.plans") == 0
    psql_file(empty_db, out / "seed.sql")
    psql_file(empty_db, out / "seed.sql")  # idempotent
    assert scalar(empty_db, "select count(*) from iam.role_permissions where permission_key = 'document.delete'") == 2
    assert scalar(empty_db, "select count(*) from catalog.features where key = 'max_documents'") == 1
    # the keys that are the app's, as `tenantdb seed` records them; no history (sqitch has it)
    assert scalar(empty_db, "select count(*) from tenantdb.app_permissions where project = 'shop'") == 3
    assert scalar(empty_db, "select to_regclass('tenantdb.changes') is null")

    # A difference in the app's objects is refused, naming the app's file; nothing is recorded.
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute("alter table app.documents disable trigger set_updated_at")
    proc = cli("adopt", "--dsn", empty_db, cwd=root)
    assert proc.returncode == 1 and "  trigger set_updated_at on app.documents: differs from " \
        "shop:functions/0001_documents.sql (definition)\n" in proc.stderr, proc.stderr
    assert scalar(empty_db, "select to_regclass('tenantdb.changes') is null")
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute("alter table app.documents enable trigger set_updated_at")
    # So is an app change sqitch deployed that the app project no longer has.
    recent = (root / "migrations" / "0002_recent.sql").read_text()
    (root / "migrations" / "0002_recent.sql").unlink()
    (root / "migrations" / "0002_recent.rollback.sql").unlink()
    proc = cli("adopt", "--dsn", empty_db, cwd=root)
    assert proc.returncode == 1 and "  sqitch change shop:0002_recent: deployed, but not a change of app shop\n" in proc.stderr, \
        proc.stderr
    assert scalar(empty_db, "select to_regclass('tenantdb.changes') is null")
    (root / "migrations" / "0002_recent.sql").write_text(recent)
    (root / "migrations" / "0002_recent.rollback.sql").write_text(NOTES["migrations/0002_recent.rollback.sql"])

    out_ = ok(cli("adopt", "--dsn", empty_db, cwd=root))
    assert [line.split()[1] for line in out_.splitlines() if line.startswith("adopted ") and "change(s)" not in line] == \
        [c.id for c in changes]
    assert "sqitch registry" in out_, out_
    assert_adopted(empty_db, changes, "postgres")
    then_both_histories_are_managed(root, empty_db, ["shop:0001_documents", "shop:0002_recent"])

    # sqitch: the package's project cannot be reverted under the app's; the app's reverts alone.
    proc = sqitch("revert", "-y", cwd=out, dsn=empty_db, home=tmp_path)
    assert proc.returncode != 0 and f'Change "{LAST}" required by currently deployed change: shop:0001_documents' in \
        proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert scalar(empty_db, "select to_regclass('app.documents') is not null")
    proc = sqitch("revert", "-y", cwd=out / "shop", dsn=empty_db, home=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert scalar(empty_db, "select to_regclass('app.documents') is null and to_regclass('app.documents_recent') is null")
    assert scalar(empty_db, "select count(*) from sqitch.changes where project = 'tenantdb'") == len(PACKAGE)
    assert scalar(empty_db, "select count(*) from sqitch.changes where project = 'shop'") == 0
    assert scalar(empty_db, f"select to_regclass('{export.change_objects(PACKAGE[-1])[0][1]}') is not null")


def test_supabase_export_numbers_the_app_after_the_package_and_is_adopted(empty_db: str, tmp_path: Path) -> None:
    root, _ = app_project(tmp_path)
    changes = Renderer(Target("supabase"), app=load(root)).changes()
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute((TESTS / "fixtures" / "supabase_like_auth.sql").read_text().encode())
    out = tmp_path / "export"
    ok(cli("export", "supabase", str(out), cwd=root))
    files = sorted((out / "supabase" / "migrations").glob("*.sql"))
    assert [f.name for f in files[-2:]] == ["20260101010001_shop_documents.sql", "20260101010002_shop_recent.sql"]
    assert len(files) == len(changes) and [f.name.split("_")[0] for f in files] == [export.supabase_version(c)[0] for c in changes]
    # after every package version, of this release and of any later one (2026010100NNNN)
    assert min(f.name[:14] for f in files[-2:]) > "20260101009999"
    seed = (out / "supabase" / "seed.sql").read_text()
    assert "target supabase" in seed and "max_documents" in seed and "document.create" in seed
    with psycopg.connect(empty_db, autocommit=True) as conn:  # the registry the Supabase CLI keeps
        conn.execute("create schema supabase_migrations; create table supabase_migrations.schema_migrations "
                     "(version text primary key, statements text[], name text)")
    for path in files:
        psql_file(empty_db, path)
        with psycopg.connect(empty_db, autocommit=True) as conn:
            conn.execute("insert into supabase_migrations.schema_migrations values (%s, null, %s)",
                         path.stem.split("_", 1))
    psql_file(empty_db, out / "supabase" / "seed.sql")
    assert scalar(empty_db, "select count(*) from iam.permissions where starts_with(key, 'document.')") == 3

    proc = cli("adopt", "--dsn", empty_db, cwd=root)  # tenantdb.toml says postgres: refused, nothing recorded
    assert proc.returncode == 1 and "deployed with --target supabase?" in proc.stderr, proc.stderr
    assert scalar(empty_db, "select to_regclass('tenantdb.changes') is null")
    out_ = ok(cli("adopt", "--target", "supabase", "--dsn", empty_db, cwd=root))
    assert "Supabase registry" in out_, out_
    assert_adopted(empty_db, changes, "supabase")
    then_both_histories_are_managed(root, empty_db, ["shop:0001_documents", "shop:0002_recent"], "--target", "supabase")
