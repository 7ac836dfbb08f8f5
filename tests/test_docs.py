"""tenantdb docs: the committed pages match the schema, the access matrix
follows the policies and iam.role_permissions, and the columns that need a
comment have one."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import psycopg
import psycopg.errors
import pytest

from conftest import ROOT
from tenantdb import docs
from tenantdb.engine import Engine
from tenantdb.errors import TenantdbError
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
    assert "api.md" in made, "tenantdb docs wrote no API page"
    assert sorted(made) == sorted(committed), f"{STALE} (files differ: {sorted(set(made) ^ set(committed))})"
    stale = sorted(name for name in made if made[name] != committed[name])
    assert not stale, f"{STALE} (changed: {', '.join(stale)})"


def test_the_pages_are_the_domain_schemas(dsn: str) -> None:
    """The schemas read from their comments are exactly sql/macros.sql's
    domain_schemas, and each has its page and a row in the index."""
    cat = catalog(dsn)
    assert [s.name for s in cat.schemas] == sorted(domain_schemas())
    pages = docs.pages(cat)
    assert sorted(pages) == sorted(["README.md", "access.md", "api.md"] + [f"{s}.md" for s in domain_schemas()])
    for s in domain_schemas():
        assert f"[`{s}`]({s}.md)" in pages["README.md"]
    assert "[The API](api.md) (schema `public`)" in pages["README.md"]


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
    assert proc.stdout.strip() == f"wrote {len(domain_schemas()) + 3} files to {out}"
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


# -- the API page --------------------------------------------------------------------

API_FUNCTIONS = """
select p.proname::text, pg_catalog.pg_get_function_identity_arguments(p.oid), obj_description(p.oid, 'pg_proc'),
       p.provolatile::text, p.oid
  from pg_catalog.pg_proc p
 where p.pronamespace = 'public'::regnamespace and p.prokind in ('f', 'p')
   and not exists (select from pg_catalog.pg_depend d
                    where d.classid = 'pg_catalog.pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')
 order by 1, 2
"""
CALLERS = ("anon", "authenticated", "service_role", "organization_scoped", "platform_staff")


def named_sqlstates(comment: str | None) -> set[str]:
    """The SQLSTATEs a comment names, found independently of tenantdb.docs:
    five characters with a digit that psycopg knows as an error code."""
    found = set()
    for word in re.findall(r"\b[0-9A-Z]{5}\b", comment or ""):
        if re.search(r"\d", word):
            try:
                psycopg.errors.lookup(word)
            except KeyError:
                continue
            found.add(word)
    return found


def sections(page: str) -> dict[str, str]:
    """### heading -> its text, up to the next heading."""
    parts = re.split(r"^### (.+)$", page.split("\n## What an app reads", 1)[0], flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def test_every_api_function_has_a_section_with_its_refusals(dsn: str) -> None:
    """Each function of the API schema (from the catalog, overloads each) has
    a section: its signature, whether it only reads, who holds EXECUTE, every
    SQLSTATE its comment names in the refusal table, and an example."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        functions = conn.execute(API_FUNCTIONS).fetchall()
        grants = {oid: [r for r in CALLERS if conn.execute("select has_function_privilege(%s, %s::oid, 'execute')",
                                                           (r, oid)).fetchone()[0]] for *_, oid in functions}
        page = docs.pages(docs.read_catalog(conn))["api.md"]
    assert len(functions) >= 60, "the API schema lost its functions"
    names = [name for name, *_ in functions]
    found = sections(page)
    expected = {f"public.{name}" if names.count(name) == 1 else f"public.{name}({identity})"
                for name, identity, *_ in functions}
    assert sorted(found) == sorted(expected)
    assert "**Undocumented**" not in page, "an API function has no comment"
    for name, identity, comment, volatility, oid in functions:
        heading = f"public.{name}" if names.count(name) == 1 else f"public.{name}({identity})"
        section = found[heading]
        assert comment and " ".join(comment.split())[:40].replace("*", "\\*") in section, heading
        assert f"public.{name}(" in section.split("```sql\n", 1)[1], heading
        reads = "reads only: works on a read replica" in section
        assert reads == (volatility in ("s", "i")), heading
        callers = re.search(r"\*\*Callable by\*\*: (.*)", section).group(1).split("; not ")[0]
        assert re.findall(r"`(\w+)`", callers) == grants[oid], heading
        refused = set(re.findall(r"^\| `([0-9A-Z]{5})` \|", section, flags=re.M))
        named = named_sqlstates(comment)
        assert named <= refused, f"{heading}: the comment names {sorted(named - refused)}, the page does not list them"
        if named:
            assert refused, heading
        assert f"supabase.rpc('{name}'" in section and f"select * from public.{name}(" in section, heading


def test_refusals_come_from_the_comment_and_the_raise_statements(dsn: str) -> None:
    """A code named in the comment only, one raised by a helper the twin calls,
    and the comment-less case: the function is documented and marked."""
    with psycopg.connect(dsn) as conn:
        conn.execute("""
            create function private.docs_probe_check(p int) returns void language plpgsql as $$
            begin
              if p < 0 then raise exception 'negative' using errcode = 'numeric_value_out_of_range'; end if;
              -- raise exception 'commented out' using errcode = '22012';
              raise notice 'not an error';
            end $$;
            create function private.docs_probe(p int) returns int language plpgsql security definer as $$
            begin
              perform private.docs_probe_check(p);
              if p = 0 then raise exception 'zero; really' using errcode = 'P0002'; end if;
              if p = 1 then raise 'plain'; end if;
              return p;
            end $$;
            create function public.docs_probe(p_x integer default 3) returns integer language sql stable
              as $$ select private.docs_probe(p_x) $$;
            comment on function public.docs_probe(integer) is 'A probe. Unknown: P0002; taken: 23505; more than 10000: 22023.';
            create function public.docs_probe(p_x integer, p_y text) returns table (a uuid, b jsonb) language sql
              as $$ select null::uuid, null::jsonb $$;
            revoke all on function public.docs_probe(integer, text) from public;
            grant execute on function public.docs_probe(integer, text) to service_role;
        """)
        page = docs.pages(docs.read_catalog(conn))["api.md"]
        conn.rollback()
    found = sections(page)
    one, two = found["public.docs_probe(p_x integer)"], found["public.docs_probe(p_x integer, p_y text)"]
    assert "| `P0002` | `no_data_found` | yes | `private.docs_probe` |" in one
    assert "| `22003` | `numeric_value_out_of_range` | no | `private.docs_probe_check` |" in one
    assert "| `P0001` | `raise_exception` | no | `private.docs_probe` |" in one
    assert "| `23505` | `unique_violation` | yes | — (not by a RAISE" in one
    assert "| `22023` |" in one and "`22012`" not in one  # 10000 is no SQLSTATE; a commented-out RAISE is none
    assert "reads only: works on a read replica" in one
    assert "**Runs**: `private.docs_probe` with its owner's rights (SECURITY DEFINER)" in one
    assert "select * from public.docs_probe();\n-- optional: p_x (default 3)" in one
    assert "await supabase.rpc('docs_probe')" in one

    assert "**Undocumented: this function has no comment**" in two
    assert "[`public.docs_probe(p_x integer, p_y text)`](#publicdocs_probep_x-integer-p_y-text)" in page.split("## Functions", 1)[0]
    assert "**Callable by**: `service_role`; not `anon`, `authenticated`, `organization_scoped`, `platform_staff`." in two
    assert "| `a` | uuid |" in two and "| `b` | jsonb |" in two
    assert "select * from public.docs_probe(p_x => 1, p_y => 'text');" in two
    assert "await supabase.rpc('docs_probe', { p_x: 1, p_y: 'text' })" in two
    assert "may write: call it on the primary" in two


def test_the_api_page_lists_what_an_app_reads(dsn: str) -> None:
    """The views of the API schema with their columns, and the domain tables
    authenticated may select (some columns only where only those are granted)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        readable = [r[0] for r in conn.execute(
            "select format('%%I.%%I', n.nspname, c.relname) from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = any (%s) and c.relkind in ('r', 'p', 'v') and not c.relispartition "
            "and has_table_privilege('authenticated', c.oid, 'select') order by 1", (domain_schemas(),)).fetchall()]
        views = [r[0] for r in conn.execute(
            "select relname from pg_class c where relnamespace = 'public'::regnamespace and relkind = 'v' "
            "and not exists (select from pg_depend d where d.objid = c.oid and d.deptype = 'e') order by 1").fetchall()]
    page = docs.generate(dsn)["api.md"].split("\n## What an app reads\n", 1)[1]
    listed = re.findall(r"^- \*\*`([\w.]+)`\*\*", page, flags=re.M)
    assert views and [f"public.{v}" for v in views] == listed[:len(views)]
    assert set(readable) <= set(listed)
    assert "- **`app.projects`** — [table](app.md#appprojects): `organization_id` uuid" in page
    assert "- **`identity.sessions`** — [table](identity.md#identitysessions) (these columns only)" in page
    assert "`token_hash`" not in page.split("identity.sessions`**", 1)[1].split("\n", 1)[0]


def test_docs_refuses_another_api_schema(dsn: str) -> None:
    with pytest.raises(TenantdbError, match="API schema is public, not api"):
        docs.generate(dsn, api_schema="api")


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
