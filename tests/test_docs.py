"""tenantdb docs: the committed pages match the schema, the access matrix
follows the policies and iam.role_permissions, and the columns that need a
comment have one."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import psycopg

from conftest import ROOT
from tenantdb import docs
from tenantdb.engine import Engine
from tenantdb.render import Renderer, Target

COMMITTED = ROOT / "docs" / "schema"
STALE = "docs/schema is stale: run `tenantdb docs docs/schema`"


def domain_schemas() -> list[str]:
    """domain_schemas of sql/macros.sql, as the templates see it."""
    env = Renderer(Target()).env
    listed = env.from_string("{% import 'sql/macros.sql' as m with context %}{{ m.schema_list() }}").render(
        target="postgres", api="public")
    return re.findall(r"'([a-z_]+)'", listed)


def catalog(dsn: str) -> docs.Catalog:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return docs.read_catalog(conn)


# -- the committed pages ---------------------------------------------------------

def test_committed_docs_are_current(dsn: str, tmp_path: Path) -> None:
    """docs/schema is byte for byte what `tenantdb docs` writes for a freshly
    migrated and seeded database."""
    docs.write(dsn, tmp_path)
    made = {p.name: p.read_bytes() for p in tmp_path.glob("*.md")}
    committed = {p.name: p.read_bytes() for p in COMMITTED.glob("*.md")}
    assert sorted(made) == sorted(committed), f"{STALE} (files differ: {sorted(set(made) ^ set(committed))})"
    stale = sorted(name for name in made if made[name] != committed[name])
    assert not stale, f"{STALE} (changed: {', '.join(stale)})"


def test_the_pages_are_the_domain_schemas(dsn: str) -> None:
    """The schemas read from their comments are exactly sql/macros.sql's
    domain_schemas, and each has its page and a row in the index."""
    cat = catalog(dsn)
    assert [s.name for s in cat.schemas] == sorted(domain_schemas())
    pages = docs.pages(cat)
    assert sorted(pages) == sorted(["README.md", "access.md"] + [f"{s}.md" for s in domain_schemas()])
    for s in domain_schemas():
        assert f"[`{s}`]({s}.md)" in pages["README.md"]


def test_output_does_not_depend_on_the_connection(dsn: str) -> None:
    """Another search_path gives the same pages: every name is qualified."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        first = docs.pages(docs.read_catalog(conn))
    with psycopg.connect(dsn, autocommit=True, options="-c search_path=tenancy,app,private,auth,public") as conn:
        second = docs.pages(docs.read_catalog(conn))
    assert first == second
    assert "REFERENCES tenancy.organizations(id)" in first["app.md"]


def test_the_cli_writes_the_pages_and_removes_its_stale_ones(dsn: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "gone.md").write_text(docs.MARKER + "\n\nfrom a schema that no longer exists\n")
    (out / "notes.md").write_text("someone's own notes\n")
    proc = subprocess.run([sys.executable, str(ROOT / "cli.py"), "--dsn", dsn, "docs", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"wrote {len(domain_schemas()) + 2} files to {out}"
    assert not (out / "gone.md").exists() and (out / "notes.md").exists()
    assert (out / "access.md").read_text() == docs.generate(dsn)["access.md"]


def test_every_diagram_names_the_tables_and_their_foreign_keys(dsn: str) -> None:
    cat = catalog(dsn)
    for s in cat.schemas:
        page = docs.pages(cat)[f"{s.name}.md"]
        tables = [r for r in s.relations if not r.is_view]
        if not tables:
            assert "```mermaid" not in page
            continue
        block = page.split("```mermaid\n", 1)[1].split("```", 1)[0]
        for r in tables:
            assert f'"{r.qualified}" {{' in block, r.qualified
            for fk in r.foreign_keys:
                assert re.search(rf'"{re.escape(r.qualified)}" \S+ "{fk.ref_schema}\.{fk.ref_table}" : "{", ".join(fk.columns)}"',
                                 block), (r.qualified, fk.name)


# -- who may do what ---------------------------------------------------------------

def policy_permission(conn: psycopg.Connection, table: str, command: str) -> str:
    """The one tenant permission the policy for command on table names."""
    schema, name = table.split(".")
    rows = conn.execute("select coalesce(qual, with_check) from pg_policies where schemaname = %s and tablename = %s "
                        "and cmd = %s and 'authenticated' = any (roles)", (schema, name, command.upper())).fetchall()
    assert len(rows) == 1, rows
    found = re.findall(r"org_ids_with_permission\('([^']+)'", rows[0][0])
    assert len(found) == 1, rows
    return found[0]


def holds(conn: psycopg.Connection, role: str, permission: str) -> bool:
    return conn.execute("select exists (select from iam.role_permissions where role_key = %s and permission_key = %s)",
                        (role, permission)).fetchone()[0]


def matrix_cell(page: str, table: str, role: str, command: str) -> str:
    section = page.split(f"\n### {table}\n", 1)[1].split("\n### ", 1)[0]
    header = next(line for line in section.splitlines() if line.startswith("| role |"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    row = next(line for line in section.splitlines() if line.startswith(f"| `{role}` |"))
    return [c.strip() for c in row.strip("|").split("|")][columns.index(command)]


def test_guest_cannot_delete_a_project_and_owner_can(dsn: str) -> None:
    """The expectation comes from the live policy and iam.role_permissions;
    the page must agree — and follow when the role's permissions change."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        permission = policy_permission(conn, "app.projects", "delete")
        owner, guest = holds(conn, "tenant_owner", permission), holds(conn, "tenant_guest", permission)
    assert owner and not guest, "the seeds changed: pick another pair of roles"
    page = docs.generate(dsn)["access.md"]
    assert matrix_cell(page, "app.projects", "tenant_owner", "delete") == f"✓ `{permission}`"
    assert matrix_cell(page, "app.projects", "tenant_guest", "delete") == f"✗ `{permission}`"
    matrix = docs.access_matrix(catalog(dsn))
    assert matrix[("app.projects", "tenant_owner", "delete")].allowed
    assert not matrix[("app.projects", "tenant_guest", "delete")].allowed

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("insert into iam.role_permissions (role_key, role_is_system, permission_key, permission_is_platform) "
                     "values ('tenant_guest', false, %s, false)", (permission,))
    assert matrix_cell(docs.generate(dsn)["access.md"], "app.projects", "tenant_guest", "delete") == f"✓ `{permission}`"


def test_matrix_reads_grants_and_policies(dsn: str) -> None:
    """A policy without a grant allows nothing; a table without a policy for
    members shows none; a personal table shows own rows; staff rows appear
    where a platform policy lets them in."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        has_delete = conn.execute("select has_table_privilege('authenticated', 'crm.payments', 'delete')").fetchone()[0]
        delete_policy = policy_permission(conn, "crm.payments", "delete")
    assert not has_delete
    page = docs.generate(dsn)["access.md"]
    assert matrix_cell(page, "crm.payments", "tenant_owner", "delete") == f"✗ no grant (policy: `{delete_policy}`)"
    assert matrix_cell(page, "audit.platform_actions", "tenant_owner", "select") == "✗ no policy"
    assert matrix_cell(page, "identity.users", "tenant_guest", "select") == "~ own rows"
    assert matrix_cell(page, "audit.platform_actions", "platform_support", "select") == "✓ `platform.security.view`"
    assert "| `platform_support` |" not in page.split("\n### identity.users\n", 1)[1].split("\n### ", 1)[0]


# -- column comments ---------------------------------------------------------------

NEEDS_COMMENT = r"""
select format('%%s.%%s.%%s', n.nspname, c.relname, a.attname)
  from pg_catalog.pg_attribute a
  join pg_catalog.pg_class c on c.oid = a.attrelid
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
 where n.nspname = any (%s) and c.relkind in ('r', 'p', 'v') and not c.relispartition
   and a.attnum > 0 and not a.attisdropped
   and (a.atttypid = 'jsonb'::regtype
        or a.attname ~ '^(status|kind|type|at)$|_(minor|cents|type|kind)$'
        or (a.attname ~ '_at$' and a.attname not in ('created_at', 'updated_at')))
   and coalesce(btrim(regexp_replace(col_description(c.oid, a.attnum), '^@personal', '')), '') = ''
 order by 1
"""


def test_columns_that_need_a_comment_have_one(dsn: str) -> None:
    """Status and type columns, money in minor units, jsonb and timestamps
    other than created_at/updated_at: their names do not say it all (values,
    units, shape, what the moment is). The @personal tag alone is no comment."""
    with psycopg.connect(dsn) as conn:
        # The check itself: an uncommented status column is found.
        conn.execute("create table app.docs_probe (status text, paid_at timestamptz, created_at timestamptz, note text)")
        found = [r[0] for r in conn.execute(NEEDS_COMMENT, (domain_schemas(),)).fetchall()]
        assert [f for f in found if f.startswith("app.docs_probe.")] == ["app.docs_probe.paid_at", "app.docs_probe.status"], found
        conn.rollback()
        missing = [r[0] for r in conn.execute(NEEDS_COMMENT, (domain_schemas(),)).fetchall()]
    assert not missing, f"columns without a comment: {', '.join(missing)}"


def test_no_comment_says_where_an_idea_came_from(dsn: str) -> None:
    """Table, column, view and function comments of the domain schemas and
    the API say what the thing is, not "Seed 003:" or "(issue 9)"."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(r"""
            select coalesce(c.oid::regclass::text, p.oid::regprocedure::text) || coalesce('.' || a.attname, ''), d.description
              from pg_description d
              left join pg_class c on d.classoid = 'pg_class'::regclass and c.oid = d.objoid
              left join pg_attribute a on c.oid is not null and d.objsubid > 0 and a.attrelid = c.oid and a.attnum = d.objsubid
              left join pg_proc p on d.classoid = 'pg_proc'::regclass and p.oid = d.objoid
             where coalesce(c.relnamespace, p.pronamespace) in
                   (select oid from pg_namespace where nspname = any (%s) or nspname in ('public', 'private'))
               and d.description ~* '(seed [0-9]{3}|\(issue [0-9]+\))'
             order by 1""", (domain_schemas(),)).fetchall()
    assert not rows, rows


def test_0017_rollback_restores_the_comments_of_0016(empty_db_factory) -> None:
    """0017 is comments only: rolled back (with the changes after it), the
    schema is that of a database migrated to 0016."""
    from test_engine import schema_dump

    fresh, rolled_back = empty_db_factory(), empty_db_factory()
    Engine(fresh, Renderer(Target()), echo=lambda _line: None).migrate("0016_client_services")
    full = Engine(rolled_back, Renderer(Target()), echo=lambda _line: None)
    full.migrate()
    with psycopg.connect(rolled_back) as conn:
        assert conn.execute("select col_description('billing.invoices'::regclass, "
                            "(select attnum from pg_attribute where attrelid = 'billing.invoices'::regclass and attname = 'status'))"
                            ).fetchone()[0], "0017 comments billing.invoices.status"
    later = [c.id for c in Renderer(Target()).changes()]
    assert full.rollback(to="0016_client_services", allow_data_loss=True) == len(later) - later.index("0016_client_services") - 1
    assert schema_dump(rolled_back) == schema_dump(fresh)
