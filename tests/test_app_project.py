"""An app project beside the package (issue: a package, not a template):
`init`, `new` in the app's own sequence, two histories in one database,
the guarded rollback, seeds merged with collisions refused by name, and
errors that name the file and line."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from apps import DOCUMENTS, cli, make_app
from tenantdb.render import Renderer, Target

PACKAGE_IDS = [c.id for c in Renderer(Target()).changes()]
NEWEST = PACKAGE_IDS[-1]


def scalar(dsn: str, query: str, params: tuple | None = None) -> object:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchone()[0]


def ok(proc) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return proc.stdout


def test_init_writes_a_project_and_refuses_to_overwrite_one(tmp_path: Path) -> None:
    proc = cli("init", "My-App", cwd=tmp_path)
    out = ok(proc)
    root = tmp_path / "My-App"
    for relpath in ("tenantdb.toml", "README.md", ".gitignore", "seeds/catalog.json", "seeds/permissions.json"):
        assert f"wrote {root.relative_to(tmp_path) / relpath}" in out or (root / relpath).is_file(), relpath
        assert (root / relpath).is_file(), relpath
    for folder in ("migrations", "functions", "policies", "seeds"):
        assert (root / folder).is_dir(), folder
    assert 'name = "my_app"' in (root / "tenantdb.toml").read_text()  # from the directory's name
    assert json.loads((root / "seeds/catalog.json").read_text()) == {"meters": [], "features": [], "plans": []}
    again = cli("init", "My-App", cwd=tmp_path)
    assert again.returncode == 2 and "is an app project already" in again.stderr
    bad = cli("init", str(tmp_path / "x"), "--name", "tenantdb", cwd=tmp_path)
    assert bad.returncode == 2 and "not 'tenantdb'" in bad.stderr and not (tmp_path / "x" / "tenantdb.toml").exists()


def test_new_numbers_in_the_apps_own_sequence_and_requires_the_newest_package_change(tmp_path: Path) -> None:
    root = make_app(tmp_path, files={})
    ok(cli("new", "migration", "documents", cwd=root / "migrations"))  # from a subdirectory too
    ok(cli("new", "policy", "documents", cwd=root))
    ok(cli("new", "migration", "folders", cwd=root))
    ok(cli("new", "function", "folders", cwd=root))
    names = sorted(p.name for p in (root / "migrations").iterdir())
    assert names == ["0001_documents.rollback.sql", "0001_documents.sql", "0002_folders.rollback.sql", "0002_folders.sql"]
    assert (root / "policies/0001_documents.sql").is_file() and (root / "functions/0002_folders.sql").is_file()
    first = (root / "migrations/0001_documents.sql").read_text()
    assert f"-- tenantdb: requires {NEWEST}\n" in first
    assert "{% import 'tenantdb/macros.sql' as m with context %}" in first
    assert "tenantdb/macros.sql" in (root / "policies/0001_documents.sql").read_text()
    # the package's files are untouched: nothing was written outside the app
    renderer = Renderer(Target())
    assert [c.id for c in renderer.changes()] == PACKAGE_IDS


def test_new_refuses_outside_a_project(tmp_path: Path) -> None:
    proc = cli("new", "migration", "x", cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "TENANTDB_SQL_DIR": ""})
    # cli.py runs from the checkout, whose SQL is found only around the working directory
    assert proc.returncode == 2 and "tenantdb init" in proc.stderr


def test_two_histories_in_one_database(app_db: tuple[Path, str]) -> None:
    root, db = app_db
    ids = [r[0] for r in psycopg.connect(db).execute("select change_id from tenantdb.changes order by applied_at, change_id")]
    assert ids[-1] == "shop:0001_documents" and set(PACKAGE_IDS) <= set(ids)
    assert scalar(db, "select count(*) from tenantdb.repeatables where path like 'shop:%'") == 2
    out = ok(cli("status", "--dsn", db, cwd=root))
    assert "tenantdb " in out and f"(the package): {len(PACKAGE_IDS)} applied, 0 pending" in out
    assert f"app shop ({root.resolve()}): 1 applied, 0 pending" in out
    assert "applied  shop:0001_documents" in out
    status = json.loads(ok(cli("status", "--json", "--dsn", db, cwd=root)))
    projects = {c["change"]: c["project"] for c in status["changes"]}
    assert projects["shop:0001_documents"] == "shop" and projects[PACKAGE_IDS[0]] == "tenantdb"
    assert ok(cli("verify", "--dsn", db, cwd=root)).strip().endswith("ok")
    # Outside the project the app's change is not this package's: marked, and verify says where to run
    outside = cli("status", "--dsn", db, cwd=root.parent)
    assert "unknown  shop:0001_documents  (applied by that app project: run status in it)" in outside.stdout
    assert "app shop (not this project's): 0 applied, 0 pending, 1 unknown" in outside.stdout
    refused = cli("rollback", "--dsn", db, cwd=root.parent)
    assert refused.returncode == 1 and "run tenantdb in that app's project" in refused.stderr


def test_the_app_table_is_gated_and_metered(app_db: tuple[Path, str]) -> None:
    """The app's permissions, meter, feature and plan limits are seeded: an
    owner inserts up to the free plan's max_documents (2), then is refused."""
    _, db = app_db
    uid = "00000000-0000-4000-8000-0000000000a1"
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("insert into auth.users (id, email) values (%s, 'a@shop.test')", (uid,))
        claims = json.dumps({"sub": uid, "role": "authenticated"})

        def as_user(query: str, params: tuple = ()) -> object:
            with conn.transaction():
                conn.execute("set local role authenticated")
                conn.execute("select set_config('request.jwt.claims', %s, true)", (claims,))
                cur = conn.execute(query, params)
                return cur.fetchone()[0] if cur.description else None

        org = as_user("select public.create_organization('Shop A', 'shop-a')")
        as_user("insert into app.documents (organization_id, title) values (%s, 'one')", (org,))
        as_user("insert into app.documents (organization_id, title) values (%s, 'two')", (org,))
        with pytest.raises(psycopg.Error) as refused:
            as_user("insert into app.documents (organization_id, title) values (%s, 'three')", (org,))
        assert refused.value.sqlstate == "54000" and "max_documents" in str(refused.value)
        assert conn.execute("select count(*) from app.documents").fetchone()[0] == 2
        access = as_user("select public.check_feature_access(%s, 'max_documents', %s)", (uid, org))
        assert (access["used"], access["limit"], access["allowed"]) == (2, 2, False)


def test_a_package_upgrade_applies_under_the_apps_changes(tmp_path: Path, empty_db: str) -> None:
    """A database at the package's previous change with the app applied:
    the next package change is applied after the app's (and recorded
    so), and the app's change stays."""
    root = make_app(tmp_path)
    older = PACKAGE_IDS[-2]
    text = (root / "migrations/0001_documents.sql").read_text()
    (root / "migrations/0001_documents.sql").write_text(f"-- tenantdb: requires {older}\n" + text)
    package = tmp_path / "package"
    import shutil

    from conftest import ROOT
    from tenantdb.paths import SQL_DIRS

    for d in SQL_DIRS:
        shutil.copytree(ROOT / d, package / d)
    for path in package.glob(f"*/{NEWEST}*.sql"):  # the release before: without its newest change
        path.unlink()
    for path in package.glob(f"*/{NEWEST[:4]}_*.sql"):
        path.unlink()
    ok(cli("migrate", "--dsn", empty_db, "--sql-dir", str(package), cwd=root))
    ok(cli("seed", "--dsn", empty_db, "--sql-dir", str(package), cwd=root))
    status = ok(cli("status", "--dsn", empty_db, cwd=root))
    assert f"pending  {NEWEST}" in status and "applied  shop:0001_documents" in status
    out = ok(cli("migrate", "--dsn", empty_db, cwd=root))
    assert f"applied {NEWEST}" in out and "shop:0001_documents" not in out
    ok(cli("seed", "--dsn", empty_db, cwd=root))
    assert ok(cli("verify", "--dsn", empty_db, cwd=root)).strip().endswith("ok")
    # The newest applied is the package's: rolling it back alone is no app's business
    ok(cli("rollback", "--dsn", empty_db, "--yes", cwd=root))
    assert scalar(empty_db, "select count(*) from tenantdb.changes where change_id = %s", (NEWEST,)) == 0
    assert scalar(empty_db, "select count(*) from tenantdb.changes where change_id = 'shop:0001_documents'") == 1


def test_rollback_mixing_package_and_app_changes_needs_cascade(app_db: tuple[Path, str]) -> None:
    root, db = app_db
    refused = cli("rollback", "--dsn", db, "--steps", "2", cwd=root)
    assert refused.returncode == 2, refused.stderr
    assert (f"would revert package change(s) {NEWEST} and, with them, app change(s): shop:0001_documents needs "
            f"{NEWEST} (applied after it)") in refused.stderr
    assert "--cascade" in refused.stderr
    assert scalar(db, "select count(*) from tenantdb.changes") == len(PACKAGE_IDS) + 1  # nothing reverted
    # the app's own change alone: no question
    ok(cli("rollback", "--dsn", db, "--yes", cwd=root))
    assert scalar(db, "select to_regclass('app.documents') is null")
    ok(cli("migrate", "--dsn", db, cwd=root))
    out = ok(cli("rollback", "--dsn", db, "--steps", "2", "--cascade", "--yes", cwd=root))
    assert "reverted shop:0001_documents" in out and f"reverted {NEWEST}" in out
    assert scalar(db, "select count(*) from tenantdb.changes") == len(PACKAGE_IDS) - 1


def test_an_app_change_requiring_a_change_the_package_lacks_is_refused(tmp_path: Path, empty_db: str) -> None:
    root = make_app(tmp_path)
    text = (root / "migrations/0001_documents.sql").read_text()
    (root / "migrations/0001_documents.sql").write_text("-- tenantdb: requires 0999_from_the_future\n" + text)
    proc = cli("migrate", "--dsn", empty_db, cwd=root)
    assert proc.returncode == 2
    assert ("shop:migrations/0001_documents.sql requires 0999_from_the_future, which this tenantdb "
            in proc.stderr and "pip install -U tenantdb" in proc.stderr)
    assert scalar(empty_db, "select to_regclass('tenantdb.changes') is null")  # nothing applied


def test_the_config_file_gives_the_target_and_without(tmp_path: Path, empty_db: str) -> None:
    root = make_app(tmp_path)
    config = (root / "tenantdb.toml").read_text().replace("without = []", 'without = ["0016_client_services"]')
    (root / "tenantdb.toml").write_text(config.replace('api_schema = "public"', 'api_schema = "api"'))
    ok(cli("migrate", "--dsn", empty_db, cwd=root))
    assert scalar(empty_db, "select count(*) from tenantdb.changes where change_id = '0016_client_services'") == 0
    assert scalar(empty_db, "select distinct api_schema from tenantdb.changes") == "api"
    assert scalar(empty_db, "select to_regprocedure('api.check_username_available(text)') is not null")
    (root / "tenantdb.toml").write_text(config + "\n[oops]\nx = 1\n")
    bad = cli("status", "--dsn", empty_db, cwd=root)
    assert bad.returncode == 2 and "unknown setting(s) oops" in bad.stderr


@pytest.mark.parametrize("catalog, message", [
    ({"meters": [{"key": "api_call", "name": "Mine", "unit": "call"}]},
     'meter "api_call" is already the package\'s'),
    ({"meters": [{"key": "api_calls", "name": "Mine", "unit": "call"}]},  # an alias of the package's api_call
     'meter "api_calls" is already the package\'s'),
    ({"features": [{"key": "max_projects", "name": "Mine", "kind": "limit"}]},
     'feature "max_projects" is already the package\'s'),
    ({"plans": [{"key": "free", "features": {"max_projects": {"limit": 9}}}]},
     'plan "free", feature(s) max_projects: already set by the package'),
    ({"plans": [{"key": "free", "price_minor": 5}]},
     'plan "free" is the package\'s: the app may add features to it ("key" and "features" only), not set price_minor'),
    ({"meters": [{"key": "documents", "aggregation": "live_count"}]},
     'meters[8] ("documents") needs "name"'),
])
def test_an_app_catalog_key_colliding_with_the_packages_is_refused_by_name(
        app_migrated_db: tuple[Path, str], catalog: dict, message: str) -> None:
    root, empty_db = app_migrated_db
    (root / "seeds/catalog.json").write_text(json.dumps({"meters": [], "features": [], "plans": [], **catalog}))
    proc = cli("seed", "--dsn", empty_db, cwd=root)
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    assert scalar(empty_db, "select count(*) from catalog.plans") == 0  # nothing seeded


def test_an_app_permission_colliding_with_the_packages_is_refused(app_db: tuple[Path, str]) -> None:
    root, empty_db = app_db
    permissions = json.loads(DOCUMENTS["seeds/permissions.json"])
    permissions["permissions"].append({"key": "project.create", "description": "Mine.", "roles": ["tenant_owner"]})
    (root / "seeds/permissions.json").write_text(json.dumps(permissions))
    proc = cli("seed", "--dsn", empty_db, cwd=root)
    assert proc.returncode == 1
    assert "SQLSTATE 23505: " in proc.stderr and "permission(s) project.create already exist and are not shop's" in proc.stderr
    assert scalar(empty_db, "select description from iam.permissions where key = 'project.create'") == "Create projects."
    # the app's own keys may be seeded again (an edited description), and an unknown role is named
    permissions["permissions"][-1] = {"key": "document.archive", "description": "Archive.", "roles": ["owner"]}
    (root / "seeds/permissions.json").write_text(json.dumps(permissions))
    proc = cli("seed", "--dsn", empty_db, cwd=root)
    assert proc.returncode == 1 and "SQLSTATE 23503: " in proc.stderr
    assert "role(s) owner are not tenant roles (known: tenant_admin" in proc.stderr
    assert scalar(empty_db, "select count(*) from iam.permissions where key = 'document.archive'") == 0
    permissions["permissions"][-1]["roles"] = ["tenant_owner"]
    permissions["permissions"][0]["description"] = "Create documents, edited."
    (root / "seeds/permissions.json").write_text(json.dumps(permissions))
    ok(cli("seed", "--dsn", empty_db, cwd=root))
    assert scalar(empty_db, "select description from iam.permissions where key = 'document.create'") == \
        "Create documents, edited."
    assert scalar(empty_db, "select count(*) from iam.role_permissions where permission_key = 'document.archive'") == 1


@pytest.mark.parametrize("text, where, what", [
    ("{% import 'tenantdb/macros.sql' as m with context %}\nselect 1;\n\n{{ m.nope('x') }}\n", 4, "UndefinedError"),
    ("select 1;\n{{ m.updated_at('app.documents') }}\n", 2, "UndefinedError: 'm' is undefined"),
    ("select 1;\nselect 2;\n{% if %}\n", 3, "TemplateSyntaxError"),
    ("select 1;\n{{ x }\n", 2, "TemplateSyntaxError: unexpected '}'"),
])
def test_a_template_error_names_the_file_and_line(tmp_path: Path, text: str, where: int, what: str) -> None:
    root = make_app(tmp_path)
    (root / "functions/0001_documents.sql").write_text(text)
    proc = cli("render", cwd=root)
    assert proc.returncode == 2
    assert f"{root.resolve() / 'functions/0001_documents.sql'}:{where}: {what}" in proc.stderr, proc.stderr


def test_a_number_collision_names_both_files(tmp_path: Path) -> None:
    root = make_app(tmp_path)
    (root / "migrations/0001_other.sql").write_text("select 1;\n")
    (root / "migrations/0001_other.rollback.sql").write_text("select 1;\n")
    proc = cli("status", "--dsn", "postgresql://nobody@127.0.0.1:1/none", cwd=root)
    assert proc.returncode == 2
    assert (f"two migrations share the number 0001: {root.resolve() / 'migrations/0001_documents.sql'} and "
            f"{root.resolve() / 'migrations/0001_other.sql'}") in proc.stderr, proc.stderr


def test_the_app_table_is_isolated_from_the_attackers_side(app_db: tuple[Path, str]) -> None:
    """Through the role switch PostgREST makes: another organization's owner,
    an anonymous caller and a member without the app's permission are
    refused; the owner is not."""
    _, db = app_db
    with psycopg.connect(db, autocommit=True) as conn:
        def user(email: str) -> str:
            return str(conn.execute("insert into auth.users (email) values (%s) returning id", (email,)).fetchone()[0])

        def as_user(uid: str | None, query: str, params: tuple = ()) -> tuple[object, int]:
            with conn.transaction():
                if uid is None:
                    conn.execute("select set_config('role', 'anon', true)")
                else:
                    conn.execute("select set_config('request.jwt.claims', %s, true), set_config('role', 'authenticated', true)",
                                 (json.dumps({"sub": uid, "role": "authenticated"}),))
                cur = conn.execute(query, params)
                return (cur.fetchone()[0] if cur.description else None), cur.rowcount

        alice, bob, gina = user("alice@shop.test"), user("bob@shop.test"), user("gina@shop.test")
        org_a, _ = as_user(alice, "select public.create_organization('Shop A', 'shop-a')")
        as_user(bob, "select public.create_organization('Shop B', 'shop-b')")
        conn.execute("select public.change_subscription_plan(%s, 'pro')", (org_a,))  # seats for a guest
        conn.execute("insert into tenancy.memberships (organization_id, user_id, role_key) values (%s, %s, 'tenant_guest')",
                     (org_a, gina))
        doc, _ = as_user(alice, "insert into app.documents (organization_id, title) values (%s, 'secret') returning id", (org_a,))
        assert as_user(alice, "select count(*) from app.documents")[0] == 1
        # another organization's owner: sees nothing, changes nothing, cannot write into A
        assert as_user(bob, "select count(*) from app.documents")[0] == 0
        assert as_user(bob, "update app.documents set title = 'mine' where id = %s", (doc,))[1] == 0
        assert as_user(bob, "delete from app.documents where id = %s", (doc,))[1] == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as planted:
            as_user(bob, "insert into app.documents (organization_id, title) values (%s, 'planted')", (org_a,))
        assert "row-level security" in str(planted.value)
        # anonymous: no privilege on the table at all
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            as_user(None, "select count(*) from app.documents")
        # a guest of A reads (tenant.read) but holds none of the app's permissions
        assert as_user(gina, "select count(*) from app.documents")[0] == 1
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            as_user(gina, "insert into app.documents (organization_id, title) values (%s, 'guest')", (org_a,))
        assert as_user(gina, "delete from app.documents where id = %s", (doc,))[1] == 0
        assert conn.execute("select title from app.documents").fetchall() == [("secret",)]


def test_tenant_policies_gives_a_command_without_a_permission_no_policy(tmp_path: Path) -> None:
    """insert= alone: members insert; update and delete get no policy (they
    were given one for a permission named 'None' before)."""
    from tenantdb.project import load

    root = make_app(tmp_path)
    (root / "policies/0001_documents.sql").write_text(
        "{% import 'tenantdb/macros.sql' as m with context %}\n"
        "{{ m.tenant_policies('app.documents', read='tenant.read', insert='document.create') }}\n")
    sql = next(r.sql for c in Renderer(Target(), app=load(root)).changes() for r in c.repeatables
               if r.path == "shop:policies/0001_documents.sql")
    assert "None" not in sql
    for prefix in ("tenant_", "scoped_"):
        assert f"create policy {prefix}insert on app.documents" in sql
        for command in ("update", "delete"):
            assert f"drop policy if exists {prefix}{command} on app.documents;" in sql
            assert f"create policy {prefix}{command} " not in sql


def _nodes(plan: dict) -> list[dict]:
    return [plan] + [n for child in plan.get("Plans", []) for n in _nodes(child)]


@pytest.mark.parametrize("role", ["authenticated", "organization_scoped"])
def test_a_members_read_of_the_app_table_uses_its_organization_index(app_db: tuple[Path, str], role: str) -> None:
    """The app's table gets the package's policy shape: a member's
    unfiltered read and a list page are served by the (organization_id, id)
    index, as the plan says (sequential scans disabled, as the package's
    own plan test does)."""
    _, db = app_db
    with psycopg.connect(db) as conn:
        uid = str(conn.execute("insert into auth.users (email) values ('plan@shop.test') returning id").fetchone()[0])
        claims = {"sub": uid, "role": "authenticated"}
        conn.execute("select set_config('request.jwt.claims', %s, true), set_config('role', 'authenticated', true)",
                     (json.dumps(claims),))
        org = conn.execute("select public.create_organization('Plan', 'plan-shop')").fetchone()[0]
        conn.execute("insert into app.documents (organization_id, title) values (%s, 'one')", (org,))
        conn.execute("reset role")
        if role == "organization_scoped":
            claims = {**claims, "role": role, "organization_id": str(org)}
        conn.execute("select set_config('request.jwt.claims', %s, true), set_config('role', %s, true)",
                     (json.dumps(claims), role))
        conn.execute("set local enable_seqscan = off")
        for query in ("select count(*) from app.documents",
                      "select id, title from app.documents order by organization_id, id limit 20"):
            plan = conn.execute("explain (format json) " + query).fetchone()[0][0]["Plan"]
            seeks = [n for n in _nodes(plan) if n.get("Index Name") == "documents_pkey"
                     and "organization_id" in n.get("Index Cond", "")]
            scans = [n for n in _nodes(plan) if n.get("Relation Name") == "documents" and "Index Cond" not in n
                     and n.get("Node Type") != "Bitmap Heap Scan"]
            # an index seek on the organization (not a whole-index scan with a filter, nor a sequential scan)
            assert len(seeks) == 1 and not scans, json.dumps(plan, indent=1)
            assert conn.execute(query).fetchone() is not None
        conn.rollback()


def test_verify_reports_app_seeds_that_cannot_run_as_a_problem(app_db: tuple[Path, str]) -> None:
    """An app permission that collides with the package's makes the seeds
    fail: verify says so as one of its problems (and goes on with its
    checks), not as an error that stops it."""
    root, db = app_db
    permissions = json.loads(DOCUMENTS["seeds/permissions.json"])
    permissions["permissions"].append({"key": "project.create", "description": "Mine.", "roles": ["tenant_owner"]})
    (root / "seeds/permissions.json").write_text(json.dumps(permissions))
    proc = cli("verify", "--dsn", db, cwd=root)
    assert proc.returncode == 1, proc.stderr
    assert "seeded: " in proc.stdout and "the seeds cannot run here" in proc.stdout
    assert "permission(s) project.create already exist and are not shop's" in proc.stdout
    assert proc.stdout.strip().endswith("1 problem(s)"), proc.stdout
