"""`tenantdb new`: the numbered files of a new change, with their headers."""

from __future__ import annotations

import re
from pathlib import Path

NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _check(name: str) -> str:
    if not NAME.match(name):
        raise ValueError(f"{name!r}: a change name is lower-case letters, digits and _ (e.g. add_bookings)")
    return name


def _numbers(root: Path) -> list[int]:
    return sorted(int(p.name[:4]) for p in (root / "migrations").glob("[0-9][0-9][0-9][0-9]_*.sql"))


def _macros(app: bool) -> str:
    """The import line of the macros: an app imports the package's public ones by their public name."""
    return "{% import 'tenantdb/macros.sql' as m with context %}" if app else "{% import 'sql/macros.sql' as m with context %}"


def new_migration(root: Path, name: str, requires: str | None = None) -> list[Path]:
    """migrations/NNNN_name.sql and NNNN_name.rollback.sql, NNNN one after the
    last. requires (an app project's migration): the package change it needs,
    written as its `-- tenantdb: requires` line."""
    _check(name)
    if list((root / "migrations").glob(f"[0-9][0-9][0-9][0-9]_{name}.sql")):
        raise ValueError(f"a migration named {name} exists already; choose another name")
    number = f"{(_numbers(root) or [0])[-1] + 1:04d}"
    change = f"{number}_{name}"
    forward = root / "migrations" / f"{change}.sql"
    backward = root / "migrations" / f"{change}.rollback.sql"
    if forward.exists() or backward.exists():
        raise ValueError(f"{forward} exists")
    needs = (f"-- tenantdb: requires {requires}\n"
             "--   (the package change this one needs: migrate applies it first, rollback keeps it)\n") if requires else ""
    forward.write_text(
        f"-- {change}: what this change does, and why.\n" + needs +
        "--   * tables: schema-qualified, a comment on each table and on every column\n"
        "--     whose name does not say it all; constraints named for what they protect\n"
        "--   * functions, triggers and policies go in functions/ and policies/ files\n"
        f"--     numbered {number} (tenantdb new function / new policy), re-applied when changed\n"
        + _macros(requires is not None) + "\n\n"
    )
    backward.write_text(
        f"-- Reverts {change}: drop what it created, newest first. The engine then\n"
        f"-- drops the functions of the functions/{number}_*.sql files.\n"
    )
    return [forward, backward]


def new_repeatable(root: Path, folder: str, name: str, app: bool = False) -> Path:
    """functions/NNNN_name.sql or policies/NNNN_name.sql for the newest migration."""
    _check(name)
    numbers = _numbers(root)
    if not numbers:
        raise ValueError("no migration yet: tenantdb new migration NAME first")
    number = f"{numbers[-1]:04d}"
    path = root / folder / f"{number}_{name}.sql"
    if path.exists():
        raise ValueError(f"{path} exists")
    what = {
        "functions": ("functions and triggers",
                      "-- private.example(p_organization_id uuid) -> what it returns\n"
                      "-- What it refuses (SQLSTATE) and who may call it.\n"),
        "policies": ("row-level security policies",
                     "-- One macro call per table, e.g.:\n"
                     "{# {{ m.tenant_policies('app.bookings', 'booking.read', 'booking.write') }} #}\n"),
    }[folder]
    path.write_text(
        f"-- {number}_{name}: {what[0]} of change {number}; applied with it and\n"
        "-- re-applied whenever this file changes (keep every statement re-runnable).\n"
        + _macros(app) + "\n\n" + what[1]
    )
    return path


CONFIG_TEXT = """\
# tenantdb app project: every tenantdb command run in this directory (or
# below it) reads this file. Command-line options override it.

[app]
# Marks this app's changes in the database (recorded as {name}:0001_...).
# Never change it once a database has the app's changes.
name = "{name}"
# The schemas holding the app's tables: verify checks them as tenant data
# (forced RLS, organization_id leading keys, bounded text). "app" is the
# package's schema for app tables; add your own schema here if you make one.
schemas = ["app"]

[database]
target = "{target}"        # postgres, or supabase
api_schema = "{api}"       # the schema of the callable API (cannot change once installed)
without = []               # optional package changes left out, e.g. ["0016_client_services"]
"""

README_TEXT = """\
# {name}: the database of your app, on tenantdb

This directory is an app project: your own tables, functions, policies
and seeds, applied beside the tenantdb package you installed (which you
never edit: `pip install -U tenantdb` then `tenantdb migrate` upgrades it
under your changes). Run every command here; `tenantdb.toml` holds the
target and API schema, so no option needs repeating.

| where | what |
|---|---|
| `tenantdb.toml` | the app's name (it marks your changes in the database), its schemas, the target |
| `migrations/NNNN_name.sql` | a versioned change: tables, constraints, indexes, grants. Never edit one that has been applied; write a new one. `tenantdb new migration NAME` numbers it after your last one and writes its `.rollback.sql`. Its `-- tenantdb: requires` line names the package change it needs. |
| `functions/NNNN_name.sql` | functions and triggers of migration NNNN (`tenantdb new function NAME`), re-applied whenever the file changes |
| `policies/NNNN_name.sql` | row-level security of migration NNNN (`tenantdb new policy NAME`), re-applied whenever the file changes |
| `seeds/permissions.json` | your permissions and the tenant roles that hold them |
| `seeds/catalog.json` | your meters and features, and their limits on the package's plans (or plans of your own) |
| `seeds/*.sql` | any other seed: run after the package's seeds, at every `tenantdb seed` (keep them idempotent) |

Every SQL file is a jinja template. Import the package's macros with
`{{% import 'tenantdb/macros.sql' as m with context %}}` (their reference:
tenantdb's docs/macros.md), e.g. `{{{{ m.tenant_policies('app.documents', read='document.read', write='document.write') }}}}`.

    tenantdb migrate   # the package's pending changes, then yours
    tenantdb seed      # the package's seeds and catalog, merged with yours
    tenantdb verify    # both, including names your policies use but nobody declared
    tenantdb status    # both histories
"""

CATALOG_TEXT = """\
{
  "meters": [],
  "features": [],
  "plans": []
}
"""

PERMISSIONS_TEXT = """\
{
  "permissions": []
}
"""


def init_project(directory: Path, name: str, target: str, api: str) -> list[Path]:
    """An app project in directory: tenantdb.toml, README.md, .gitignore,
    migrations/, functions/, policies/ and seeds/ (its permissions and
    catalog files, empty). Refuses a directory that holds one already,
    or any file it would overwrite."""
    from .project import CONFIG, IDENTIFIER, NAME, PACKAGE

    if not NAME.match(name) or name == PACKAGE:
        raise ValueError(f"--name {name!r}: lower-case letters, digits and _, starting with a letter (not {PACKAGE!r})")
    if not IDENTIFIER.fullmatch(api):
        raise ValueError(f"--api-schema {api!r}: a plain lower-case schema name")
    files = {
        CONFIG: CONFIG_TEXT.format(name=name, target=target, api=api),
        "README.md": README_TEXT.format(name=name),
        ".gitignore": ".tenantdb/\n.env\n",
        "seeds/catalog.json": CATALOG_TEXT,
        "seeds/permissions.json": PERMISSIONS_TEXT,
    }
    if (directory / CONFIG).exists():
        raise ValueError(f"{directory / CONFIG} exists: {directory} is an app project already")
    taken = [str(directory / f) for f in files if (directory / f).exists()]
    if taken:
        raise ValueError(f"would overwrite {', '.join(taken)}: init an empty directory, or move them")
    written = []
    for folder in ("migrations", "functions", "policies", "seeds"):
        (directory / folder).mkdir(parents=True, exist_ok=True)
    for relpath, text in files.items():
        (directory / relpath).write_text(text)
        written.append(directory / relpath)
    return written
