"""Write the changes as a sqitch project or as Supabase CLI migrations,
each with the seed (seed.sql) rendered from the sources `tenantdb seed` loads.

In an app project both carry the app's changes too: sqitch, as a project of
the app's own beside the package's, requiring the package's changes across
projects; Supabase, as migrations numbered after every package migration."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path

from . import appseed
from .project import IDENTIFIER, PACKAGE
from .render import Change, Renderer, drop_functions_sql, sqlquote

# Top-level (unindented) statements of a migration that create a named object.
_IDENT = IDENTIFIER.pattern
_SCHEMA_RE = re.compile(rf"^create schema (if not exists )?({_IDENT})\s*;", re.I | re.M)
_TABLE_RE = re.compile(rf"^create (?:unlogged )?table (if not exists )?({_IDENT}\.{_IDENT})", re.I | re.M)
_VIEW_RE = re.compile(rf"^create (?:or replace )?(?:materialized )?view (if not exists )?({_IDENT}\.{_IDENT})", re.I | re.M)
_INDEX_RE = re.compile(rf"^create (?:unique )?index (if not exists )?({_IDENT}) on (?:only )?({_IDENT})\.", re.I | re.M)
PLANNER = "tenantdb <tenantdb@localhost>"
PLANNED_AT = "2026-01-01T00:00:00Z"


# Every deploy script ends as tenantdb migrate does: organization_scoped
# gets exactly authenticated's privileges (once the function exists).
MIRROR_GRANTS = """-- organization_scoped: the privileges of authenticated (as tenantdb migrate does)
do $mirror$
begin
  if to_regprocedure('private.mirror_client_grants()') is not null then
    perform private.mirror_client_grants();
  end if;
end
$mirror$;
"""


# Exported scripts say only what matters: the NOTICEs of `if not exists`
# and of DO blocks (hundreds on a fresh deploy) are left out.
QUIET_LOCAL = "set local client_min_messages = warning;\n"


def supabase_base_check() -> str:
    """A DO block refusing, before anything else, a database without what
    --target supabase expects (Supabase's auth schema and roles): the same
    prerequisites `tenantdb migrate --target supabase` checks."""
    from .engine import SUPABASE_PREREQUISITES

    tests = "".join(f"  if not ({query}) then missing := missing || {sqlquote(what)}::text; end if;\n"
                    for what, query in SUPABASE_PREREQUISITES)
    return ("-- This export is rendered for Supabase: refuse, up front, a database without Supabase's auth and roles.\n"
            "do $base$\ndeclare missing text[] := '{}';\nbegin\n" + tests +
            "  if cardinality(missing) > 0 then\n"
            "    raise exception 'this export is rendered for Supabase (--target supabase) and this database lacks: %',\n"
            "      array_to_string(missing, ', ') using errcode = '55000',\n"
            "      hint = 'Apply it to a Supabase project (supabase db push, supabase db reset); on plain PostgreSQL use "
            "tenantdb migrate, or an export made with --target postgres. Nothing was applied.';\n"
            "  end if;\nend\n$base$;\n")


def deploy_sql(change: Change) -> str:
    parts = [change.sql] + [f"-- {r.path}\n{r.sql}" for r in change.repeatables] + [MIRROR_GRANTS]
    return "\n".join(parts)


def revert_sql(change: Change) -> str:
    return "\n".join([change.rollback + drop_functions_sql(change.functions), MIRROR_GRANTS])


def change_objects(change: Change) -> list[tuple[str, str, bool]]:
    """(kind, schema-qualified name, unconditional) of each object the change
    creates: its migration's schemas, tables, views and named indexes
    (top-level statements), then its repeatables' functions. Unconditional:
    created without `if not exists`, so it exists only if the change ran."""
    sql = change.sql
    found = [("schema", m.group(2), not m.group(1)) for m in _SCHEMA_RE.finditer(sql)]
    found += [("table", m.group(2), not m.group(1)) for m in _TABLE_RE.finditer(sql)]
    found += [("view", m.group(2), not m.group(1)) for m in _VIEW_RE.finditer(sql)]
    found += [("index", f"{m.group(3)}.{m.group(2)}", not m.group(1)) for m in _INDEX_RE.finditer(sql)]
    found += [("function", f, False) for f in change.functions]
    return found


def verify_sql(change: Change) -> str:
    checks = []
    for kind, name, _ in change_objects(change):
        if kind in ("table", "view"):
            checks.append(f"select 1 from {name} where false;")
        elif kind == "schema":
            checks.append(f"select '{name}'::regnamespace;")
        elif kind == "index":
            checks.append(f"select '{name}'::regclass;")
        else:
            checks.append(f"select '{name}'::regproc;")
    return "\n".join(checks) or "select 1;"


def seed_sql(renderer: Renderer) -> str:
    """The seed as one script: what `tenantdb seed` loads, in its order,
    rendered for the renderer's target. The plan catalog (seeds/catalog.json,
    with an app project's merged in) through private.load_catalog, the
    package's SQL seeds; in an app project then the app's permissions (with
    tenantdb's record of which keys are the app's, which `tenantdb seed`
    reads once the database is adopted) and the app's SQL seeds. Idempotent."""
    app = renderer.app
    document, _ = appseed.catalog_document(renderer.root, app)
    catalog = "seeds/catalog.json" + (f" + {app.name}:seeds/catalog.json" if app else "")
    parts = [
        f"-- tenantdb seed (target {renderer.target.name}, API schema {renderer.target.api}): what `tenantdb seed` loads,\n"
        f"-- rendered from seeds/{f' and {app.name}:seeds/' if app else ''}. Idempotent: run it after each deploy, e.g.\n"
        "--   psql -X -1 -v ON_ERROR_STOP=1 -f seed.sql\n",
        f"-- {catalog}\n"
        f"select private.load_catalog({sqlquote(json.dumps(document, indent=2, ensure_ascii=False))}::jsonb) is not null as catalog_loaded;\n",
    ]
    parts += [f"-- {relpath}\n{sql}" for relpath, sql in renderer.seeds()]
    declared = appseed.permissions(app) if app else []
    if app and declared:
        source = f"{app.name}:seeds/permissions.json"
        parts.append(f"-- {source}, and tenantdb's record of the keys that are {app.name}'s\n"
                     f"create schema if not exists tenantdb;\n{appseed.OWNERSHIP}"
                     + "".join(appseed.permissions_statements(app, declared, source)))
    parts += [f"-- {relpath}\n{sql}" for relpath, sql in renderer.app_seeds()]
    return "\n".join(parts + [MIRROR_GRANTS])


def sqitch_deploy_script(change: Change) -> str:
    """deploy/<change>.sql of the sqitch export (sqitch records its SHA-1 as script_hash)."""
    return "BEGIN;\n" + QUIET_LOCAL + deploy_sql(change) + "\nCOMMIT;\n"


def sqitch_script_hash(change: Change) -> str:
    return hashlib.sha1(sqitch_deploy_script(change).encode("utf-8")).hexdigest()


# Supabase CLI versions: the package's migrations are 2026010100NNNN (its
# change numbers), an app's 2026010101NNNN (its own numbers): after every
# package migration of this release and of later ones, never the same.
SUPABASE_PACKAGE = "2026010100"
SUPABASE_APP = "2026010101"


def supabase_version(change: Change) -> tuple[str, str]:
    """(version, name) of the change's Supabase CLI migration file; an app
    change's name starts with the app's (20260101010001_shop_documents)."""
    number, _, name = change.local_id.partition("_")
    prefix = SUPABASE_APP if change.is_app else SUPABASE_PACKAGE
    return f"{prefix}{int(number):04d}", (f"{change.project}_{name}" if change.is_app else name)


def sqitch(changes: list[Change], out: Path, seed: str | None = None) -> list[Path]:
    """The package's changes as a sqitch project (%project=tenantdb) in out;
    an app project's as a sqitch project of its own in out/<app name>/
    (%project=<app name>, changes named by their local ids), each change
    requiring the package changes its requires line names, else the
    package's last change, as sqitch's cross-project tenantdb:<change>.
    With seed, also seed.sql beside the package's sqitch.plan: a script to
    run after `sqitch deploy` of both, not a change of a plan (a change
    after the last migration would change its id with every new migration,
    and sqitch could then no longer deploy a newer export on top)."""
    package = [c for c in changes if not c.is_app]
    app = [c for c in changes if c.is_app]
    written = _sqitch_project(PACKAGE, package, out, lambda change: [])
    if app:
        last = package[-1].id
        written += _sqitch_project(app[0].project, app, out / app[0].project,
                                   lambda change: [f"{PACKAGE}:{r}" for r in change.requires or (last,)])
    if seed is not None:
        (out / "seed.sql").write_text(seed)
        written.append(out / "seed.sql")
    return written


def _sqitch_project(project: str, changes: list[Change], out: Path, needs: Callable[[Change], list[str]]) -> list[Path]:
    """sqitch.conf, sqitch.plan and deploy/, revert/, verify/ of one project
    in out: each change requires the one before it, and needs(change)."""
    for sub in ("deploy", "revert", "verify"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    (out / "sqitch.conf").write_text("[core]\n\tengine = pg\n\tplan_file = sqitch.plan\n\ttop_dir = .\n")
    lines = ["%syntax-version=1.0.0", f"%project={project}", ""]
    written = [out / "sqitch.conf", out / "sqitch.plan"]
    previous: str | None = None
    for change in changes:
        dependencies = ([previous] if previous else []) + needs(change)
        requires = f" [{' '.join(dependencies)}]" if dependencies else ""
        lines.append(f"{change.local_id}{requires} {PLANNED_AT} {PLANNER} # {change.path}")
        scripts = (("deploy", sqitch_deploy_script(change)),
                   ("revert", "BEGIN;\n" + QUIET_LOCAL + revert_sql(change) + "\nCOMMIT;\n"),
                   ("verify", verify_sql(change) + "\n"))
        for sub, text in scripts:
            path = out / sub / f"{change.local_id}.sql"
            path.write_text(text)
            written.append(path)
        previous = change.local_id
    (out / "sqitch.plan").write_text("\n".join(lines) + "\n")
    return written


def supabase(changes: list[Change], out: Path, seed: str | None = None) -> list[Path]:
    """supabase/migrations/<version>_<name>.sql; with seed, also
    supabase/seed.sql (what `supabase db reset` runs after the migrations)."""
    folder = out / "supabase" / "migrations"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for i, change in enumerate(changes):
        version, name = supabase_version(change)
        path = folder / f"{version}_{name}.sql"
        # not SET LOCAL: psql -f runs a file outside a transaction (the session ends with the file)
        path.write_text(f"-- tenantdb change {change.id}\n" + (supabase_base_check() if i == 0 else "") +
                        "set client_min_messages = warning;\n" + deploy_sql(change))
        written.append(path)
    if seed is not None:
        (out / "supabase" / "seed.sql").write_text(seed)
        written.append(out / "supabase" / "seed.sql")
    return written
