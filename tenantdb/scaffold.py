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


def new_migration(root: Path, name: str) -> list[Path]:
    """migrations/NNNN_name.sql and NNNN_name.rollback.sql, NNNN one after the last."""
    _check(name)
    if list((root / "migrations").glob(f"[0-9][0-9][0-9][0-9]_{name}.sql")):
        raise ValueError(f"a migration named {name} exists already; choose another name")
    number = f"{(_numbers(root) or [0])[-1] + 1:04d}"
    change = f"{number}_{name}"
    forward = root / "migrations" / f"{change}.sql"
    backward = root / "migrations" / f"{change}.rollback.sql"
    if forward.exists() or backward.exists():
        raise ValueError(f"{forward} exists")
    forward.write_text(
        f"-- {change}: what this change does, and why.\n"
        "--   * tables: schema-qualified, a comment on each table and on every column\n"
        "--     whose name does not say it all; constraints named for what they protect\n"
        "--   * functions, triggers and policies go in functions/ and policies/ files\n"
        f"--     numbered {number} (tenantdb new function / new policy), re-applied when changed\n"
        "{% import 'sql/macros.sql' as m with context %}\n\n"
    )
    backward.write_text(
        f"-- Reverts {change}: drop what it created, newest first. The engine then\n"
        f"-- drops the functions of the functions/{number}_*.sql files.\n"
    )
    return [forward, backward]


def new_repeatable(root: Path, folder: str, name: str) -> Path:
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
        "{% import 'sql/macros.sql' as m with context %}\n\n" + what[1]
    )
    return path
