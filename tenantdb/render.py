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

from .paths import sql_root

TARGETS = ("postgres", "supabase")
# A migration whose first lines carry this marker may be left out with
# `--without CHANGE` (nothing later depends on it).
OPTIONAL_MARKER = "-- tenantdb: optional"
# A migration whose first lines carry this marker declares that it drops
# data: migrate shows what it would drop (tables with rows, columns with
# values) and applies it only with --yes.
DESTRUCTIVE_MARKER = "-- tenantdb: destructive"
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
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", self.api):
            raise ValueError(f"API schema name {self.api!r} is not a plain lower-case identifier")


@dataclass
class Repeatable:
    path: str  # relative to the SQL root, e.g. functions/0004_access.sql
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
    id: str  # e.g. 0002_identity
    path: str
    sql: str
    rollback: str
    repeatables: list[Repeatable] = field(default_factory=list)

    @property
    def functions(self) -> list[str]:
        return sorted({f for r in self.repeatables for f in r.functions})

    @property
    def number(self) -> str:
        return self.id.split("_", 1)[0]

    @property
    def destructive(self) -> bool:
        """The file declares that it drops data (DESTRUCTIVE_MARKER in its first 30 lines)."""
        return DESTRUCTIVE_MARKER in "\n".join(self.sql.splitlines()[:30])

    @property
    def checksum(self) -> str:
        return checksum(self.sql)


class Renderer:
    def __init__(self, target: Target, root: Path | None = None, without: tuple[str, ...] = ()) -> None:
        self.target = target
        self.root = root or sql_root()
        self.without = tuple(without)
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(self.root)),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            autoescape=False,
        )
        self.env.filters["sqlquote"] = sqlquote

    def render(self, relpath: str) -> str:
        template = self.env.get_template(relpath)
        return template.render(target=self.target.name, api=self.target.api)

    def _files(self, folder: str, exclude_rollback: bool = True) -> list[str]:
        base = self.root / folder
        names = sorted(p.name for p in base.glob("*.sql"))
        if exclude_rollback:
            names = [n for n in names if not n.endswith(".rollback.sql")]
        return [f"{folder}/{n}" for n in names]

    def changes(self) -> list[Change]:
        result: list[Change] = []
        for relpath in self._files("migrations"):
            change_id = Path(relpath).stem
            rollback_path = f"migrations/{change_id}.rollback.sql"
            if not (self.root / rollback_path).exists():
                raise FileNotFoundError(f"{relpath} has no {rollback_path}")
            result.append(Change(change_id, relpath, self.render(relpath), self.render(rollback_path)))
        by_number = {c.number: c for c in result}
        if len(by_number) != len(result):
            raise ValueError("two migrations share a number")
        for folder in ("functions", "policies"):
            for relpath in self._files(folder):
                number = Path(relpath).name.split("_", 1)[0]
                if number not in by_number:
                    raise ValueError(f"{relpath}: no migration numbered {number} to pair it with")
                by_number[number].repeatables.append(Repeatable(relpath, self.render(relpath)))
        return self._leave_out(result)

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
        return [(relpath, self.render(relpath)) for relpath in self._files("seeds")]

    def checks(self) -> list[tuple[str, str]]:
        return [(relpath, self.render(relpath)) for relpath in self._files("sql/checks")]
