"""Render the package's SQL templates for a target, and list its changes.

A *change* is one versioned migration (migrations/NNNN_name.sql, with its
NNNN_name.rollback.sql) plus the repeatable files paired with it by number
(functions/NNNN_*.sql, then policies/NNNN_*.sql). Repeatables hold functions,
triggers and policies: re-applied whenever their rendered text changes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from .errors import UsageProblem
from .paths import sql_root
from .project import IDENTIFIER, PACKAGE, AppProject

TARGETS = ("postgres", "supabase")
# A migration whose first lines carry this marker may be left out with
# `--without CHANGE` (nothing later depends on it).
OPTIONAL_MARKER = "-- tenantdb: optional"
# A migration whose first lines carry this marker declares that it drops
# data: migrate shows what it would drop (tables with rows, columns with
# values) and applies it only with --yes.
DESTRUCTIVE_MARKER = "-- tenantdb: destructive"
def history_key(project: str, local: str) -> str:
    """The key of a change id (or repeatable or seed path) in tenantdb's
    history: the package's as it is (0001_foundation), an app's prefixed
    with the app's name (shop:0001_documents, shop:functions/0001_x.sql)."""
    return local if project == PACKAGE else f"{project}:{local}"


def local_part(key: str) -> str:
    """A history key without its app prefix: 0001_documents, functions/0001_x.sql."""
    return key.split(":", 1)[-1]


def project_of(key: str) -> str:
    """The history a change id (or repeatable or seed path) belongs to:
    PACKAGE for the package's (no prefix), else the app's name, the prefix
    of <app>:0001_documents."""
    return key.split(":", 1)[0] if ":" in key else PACKAGE


# An app migration's first lines may name the package changes it needs:
# "-- tenantdb: requires 0021_meter_aggregations" (several: comma-separated).
REQUIRES_RE = re.compile(r"^--\s*tenantdb:\s*requires\s+(.+)$", re.M)
_FUNCTION_RE = re.compile(r"create\s+or\s+replace\s+function\s+([a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*)\s*\(", re.I)


def sqlquote(value: str) -> str:
    """A SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def checksum(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def drop_functions_sql(names: list[str]) -> str:
    """SQL dropping every overload of the named (schema-qualified) functions,
    with the triggers and policies that call them (the package's own, made
    by its repeatables). Anything else that uses one — a view, a default, a
    constraint of someone else's — refuses the drop (2BP01), naming it."""
    if not names:
        return ""
    listed = ", ".join(sqlquote(n) for n in sorted(set(names)))
    return (
        "do $drop$\ndeclare f regprocedure; users text;\nbegin\n"
        "  for f in select p.oid::regprocedure from pg_catalog.pg_proc p\n"
        "            join pg_catalog.pg_namespace n on n.oid = p.pronamespace\n"
        f"           where n.nspname || '.' || p.proname in ({listed}) loop\n"
        "    select string_agg(distinct pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid), ', ') into users\n"
        "      from pg_catalog.pg_depend d\n"
        "     where d.refclassid = 'pg_catalog.pg_proc'::regclass and d.refobjid = f::oid and d.deptype = 'n'\n"
        "       and d.classid not in ('pg_catalog.pg_trigger'::regclass, 'pg_catalog.pg_policy'::regclass);\n"
        "    if users is not null then\n"
        "      raise exception 'cannot drop function %: % uses it', f, users using errcode = '2BP01',\n"
        "        hint = 'Drop or change what uses it first; tenantdb only drops its own triggers and policies.';\n"
        "    end if;\n"
        "    execute format('drop function %s cascade', f);\n"
        "  end loop;\nend\n$drop$;\n"
    )


@dataclass(frozen=True)
class Target:
    name: str = "postgres"
    api: str = "public"

    def __post_init__(self) -> None:
        if self.name not in TARGETS:
            raise ValueError(f"unknown target {self.name!r} (choose from {', '.join(TARGETS)})")
        if not IDENTIFIER.fullmatch(self.api):
            raise ValueError(f"API schema name {self.api!r} is not a plain lower-case identifier")


@dataclass
class Repeatable:
    path: str  # the package's: relative to its SQL root (functions/0004_access.sql); an app's: myapp:functions/0001_x.sql
    sql: str

    @property
    def checksum(self) -> str:
        return checksum(self.sql)

    @property
    def functions(self) -> list[str]:
        """Schema-qualified names of the functions the file defines."""
        return sorted({name for name, _ in self.function_headers})

    @property
    def function_headers(self) -> list[tuple[str, str]]:
        """(schema-qualified name, argument list) of each function the file defines."""
        headers = []
        for match in _FUNCTION_RE.finditer(self.sql):
            depth, start = 1, match.end()
            for pos in range(start, len(self.sql)):
                depth += {"(": 1, ")": -1}.get(self.sql[pos], 0)
                if depth == 0:
                    headers.append((match.group(1), self.sql[start:pos]))
                    break
        return headers


@dataclass
class Change:
    id: str  # the package's: 0002_identity; an app's: myapp:0001_documents
    path: str  # the package's: migrations/0002_identity.sql; an app's: myapp:migrations/0001_documents.sql
    sql: str
    rollback: str
    repeatables: list[Repeatable] = field(default_factory=list)
    project: str = PACKAGE  # "tenantdb", or the app's name
    requires: tuple[str, ...] = ()  # an app change: the package changes it names (REQUIRES_RE)

    @property
    def local_id(self) -> str:
        """The id inside its project: 0001_documents for myapp:0001_documents."""
        return local_part(self.id)

    @property
    def is_app(self) -> bool:
        return self.project != PACKAGE

    @property
    def functions(self) -> list[str]:
        return sorted({f for r in self.repeatables for f in r.functions})

    @property
    def number(self) -> str:
        return self.local_id.split("_", 1)[0]

    @property
    def destructive(self) -> bool:
        """The file declares that it drops data (DESTRUCTIVE_MARKER in its first 30 lines)."""
        return DESTRUCTIVE_MARKER in "\n".join(self.sql.splitlines()[:30])

    @property
    def checksum(self) -> str:
        return checksum(self.sql)


class TemplateProblem(UsageProblem, ValueError):
    """A template that cannot be rendered: the message names file and line
    (exit 2, wherever it is rendered: a change, a seed, a check)."""


def _located(exc: Exception, filename: str) -> str:
    """'file:line: message' for a jinja error raised while rendering filename
    (a syntax error carries its line; a runtime one is found in the
    traceback, whose template frames jinja rewrites to the template's lines)."""
    if isinstance(exc, jinja2.TemplateSyntaxError):
        where = exc.filename or filename
        return f"{where}:{exc.lineno}: {type(exc).__name__}: {exc.message}"
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith(".sql")]
    if frames:
        return f"{frames[-1].filename}:{frames[-1].lineno}: {type(exc).__name__}: {exc}"
    return f"{filename}: {type(exc).__name__}: {exc}"


class Renderer:
    """Renders the package's SQL (root) and, with app, an app project's.

    Two jinja environments: the package's files see the package's root
    only; an app's files see the app's root, and the package's public
    macros as 'tenantdb/macros.sql'. So nothing of the app can change how
    a package file renders (its checksum)."""

    def __init__(self, target: Target, root: Path | None = None, without: tuple[str, ...] = (),
                 app: AppProject | None = None) -> None:
        self.target = target
        self.root = root or sql_root()
        self.without = tuple(without)
        self.app = app
        self.env = self._environment(jinja2.FileSystemLoader(str(self.root)))
        self.app_env = self._environment(jinja2.ChoiceLoader([
            jinja2.PrefixLoader({PACKAGE: jinja2.FileSystemLoader(str(self.root / "sql"))}),
            jinja2.FileSystemLoader(str(app.root)),
        ])) if app else None

    def _environment(self, loader: jinja2.BaseLoader) -> jinja2.Environment:
        env = jinja2.Environment(loader=loader, undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                                 autoescape=False)
        env.filters["sqlquote"] = sqlquote
        # verify's checks cover the app's schemas too (sql/macros.sql: domain_schemas)
        env.globals["app_schemas"] = list(self.app.schemas) if self.app else []
        return env

    def render(self, relpath: str, project: str = PACKAGE) -> str:
        env = self.env if project == PACKAGE else self.app_env
        root = self.root if project == PACKAGE else self.app.root  # type: ignore[union-attr]
        try:
            template = env.get_template(relpath)  # type: ignore[union-attr]
            return template.render(target=self.target.name, api=self.target.api)
        except jinja2.TemplateNotFound as exc:
            raise TemplateProblem(f"{root / relpath}: template {exc.name!r} not found"
                                  + (" (the package's macros are 'tenantdb/macros.sql')" if project != PACKAGE else "")
                                  ) from exc
        except jinja2.TemplateError as exc:
            raise TemplateProblem(_located(exc, str(root / relpath))) from exc

    def _files(self, folder: str, exclude_rollback: bool = True, base: Path | None = None) -> list[str]:
        base = (base or self.root) / folder
        names = sorted(p.name for p in base.glob("*.sql"))
        if exclude_rollback:
            names = [n for n in names if not n.endswith(".rollback.sql")]
        return [f"{folder}/{n}" for n in names]

    def _project_changes(self, project: str, root: Path) -> list[Change]:
        """The changes of one history (the package's, or the app's), in order."""
        result: list[Change] = []
        for relpath in self._files("migrations", base=root):
            local = Path(relpath).stem
            if not re.fullmatch(r"\d{4}_[a-z0-9_]+", local):
                raise ValueError(f"{root / relpath}: a migration is named NNNN_name.sql (tenantdb new migration NAME)")
            rollback_path = f"migrations/{local}.rollback.sql"
            if not (root / rollback_path).exists():
                raise ValueError(f"{root / relpath} has no {rollback_path} (tenantdb new migration writes both)")
            sql = self.render(relpath, project)
            requires = tuple(r.strip() for line in REQUIRES_RE.findall("\n".join(sql.splitlines()[:30]))
                             for r in line.split(",") if r.strip())
            result.append(Change(history_key(project, local), history_key(project, relpath), sql,
                                 self.render(rollback_path, project),
                                 project=project, requires=requires))
        by_number: dict[str, Change] = {}
        for change in result:
            if change.number in by_number:
                first = by_number[change.number]
                raise ValueError(f"two migrations share the number {change.number}: "
                                 f"{root / local_part(first.path)} and {root / local_part(change.path)}")
            by_number[change.number] = change
        for folder in ("functions", "policies"):
            for relpath in self._files(folder, base=root):
                number = Path(relpath).name.split("_", 1)[0]
                if number not in by_number:
                    raise ValueError(f"{root / relpath}: no migration numbered {number} to pair it with")
                by_number[number].repeatables.append(Repeatable(history_key(project, relpath),
                                                                self.render(relpath, project)))
        return result

    def changes(self) -> list[Change]:
        """The package's changes, then the app's (the order migrate applies
        pending ones in: an app change may need any package change)."""
        package = self._leave_out(self._project_changes(PACKAGE, self.root))
        if not self.app:
            return package
        app = self._project_changes(self.app.name, self.app.root)
        self._check_requires(package, app)
        self._check_functions(package, app)
        return package + app

    def _check_functions(self, package: list[Change], app: list[Change]) -> None:
        """No app repeatable defines a function a package repeatable defines:
        migrate would replace the package's, and a rollback of the app change
        would drop it, with the package's triggers and policies that call it."""
        theirs = {name: rep.path for change in package for rep in change.repeatables for name in rep.functions}
        for change in app:
            for rep in change.repeatables:
                for name in [n for n in rep.functions if n in theirs]:
                    raise ValueError(f"{self.app.root / local_part(rep.path)} defines {name}, which is the "  # type: ignore[union-attr]
                                     f"package's ({theirs[name]}): migrate would replace it, and a rollback of "
                                     f"{change.id} would drop it with the package's triggers and policies that call "
                                     "it; give the app's function a name of its own, in the app's schema")

    def _check_requires(self, package: list[Change], app: list[Change]) -> None:
        """Every package change an app change requires is in this package and selected."""
        from . import __version__

        known = {c.id for c in package}
        for change in app:
            for needed in change.requires:
                if needed in known:
                    continue
                if needed in self.without:
                    raise ValueError(f"{change.path} requires {needed}, which is left out (--without / "
                                     "database.without): keep it, or drop the requirement")
                raise ValueError(f"{change.path} requires {needed}, which this tenantdb ({__version__}) does not "
                                 f"have (its newest change is {package[-1].id if package else 'none'}): "
                                 "upgrade it (pip install -U tenantdb), or correct the name")

    def _leave_out(self, changes: list[Change]) -> list[Change]:
        """The changes without those named by --without (optional ones only)."""
        optional = {c.id for c in changes if OPTIONAL_MARKER in "\n".join(c.sql.splitlines()[:30])}
        for name in self.without:
            if name not in {c.id for c in changes}:
                raise ValueError(f"--without {name}: no such change (optional ones: {', '.join(sorted(optional)) or 'none'})")
            if name not in optional:
                raise ValueError(f"--without {name}: not an optional change; only these may be left out: "
                                 f"{', '.join(sorted(optional)) or 'none'}")
        return [c for c in changes if c.id not in self.without]

    def seeds(self) -> list[tuple[str, str]]:
        """The package's SQL seeds."""
        return [(relpath, self.render(relpath)) for relpath in self._files("seeds")]

    def app_seeds(self) -> list[tuple[str, str]]:
        """The app project's SQL seeds (named myapp:seeds/...), run after the
        package's seeds and the app's permissions; none without an app."""
        if not self.app:
            return []
        return [(history_key(self.app.name, relpath), self.render(relpath, self.app.name))
                for relpath in self._files("seeds", base=self.app.root)]

    def checks(self, folder: str = "sql/checks") -> list[tuple[str, str]]:
        """verify's checks in folder (sql/checks; sql/checks/seeded: those
        that read what the seeds declare), rendered."""
        return [(relpath, self.render(relpath)) for relpath in self._files(folder)]
