"""Write the changes as a sqitch project or as Supabase CLI migrations."""

from __future__ import annotations

import re
from pathlib import Path

from .render import Change, drop_functions_sql

_TABLE_RE = re.compile(r"^create table (?:if not exists )?([a-z_]+\.[a-z_]+)", re.I | re.M)
PLANNER = "tenantdb <tenantdb@localhost>"
PLANNED_AT = "2026-01-01T00:00:00Z"


def deploy_sql(change: Change) -> str:
    parts = [change.sql] + [f"-- {r.path}\n{r.sql}" for r in change.repeatables]
    return "\n".join(parts)


def revert_sql(change: Change) -> str:
    return change.rollback + drop_functions_sql(change.functions)


def verify_sql(change: Change) -> str:
    checks = [f"select 1 from {t} where false;" for t in _TABLE_RE.findall(change.sql)]
    checks += [f"select '{f}'::regproc;" for r in change.repeatables for f in r.functions]
    return "\n".join(checks) or "select 1;"


def sqitch(changes: list[Change], out: Path) -> list[Path]:
    for sub in ("deploy", "revert", "verify"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    (out / "sqitch.conf").write_text("[core]\n\tengine = pg\n\tplan_file = sqitch.plan\n\ttop_dir = .\n")
    lines = ["%syntax-version=1.0.0", "%project=tenantdb", ""]
    written = [out / "sqitch.conf", out / "sqitch.plan"]
    previous: str | None = None
    for change in changes:
        requires = f" [{previous}]" if previous else ""
        lines.append(f"{change.id}{requires} {PLANNED_AT} {PLANNER} # {change.path}")
        for sub, body in (("deploy", deploy_sql(change)), ("revert", revert_sql(change)), ("verify", verify_sql(change))):
            path = out / sub / f"{change.id}.sql"
            wrap = sub != "verify"
            path.write_text(("BEGIN;\n" if wrap else "") + body + ("\nCOMMIT;\n" if wrap else "\n"))
            written.append(path)
        previous = change.id
    (out / "sqitch.plan").write_text("\n".join(lines) + "\n")
    return written


def supabase(changes: list[Change], out: Path) -> list[Path]:
    folder = out / "supabase" / "migrations"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for change in changes:
        number, _, name = change.id.partition("_")
        path = folder / f"2026010100{int(number):04d}_{name}.sql"
        path.write_text(f"-- tenantdb change {change.id}\n" + deploy_sql(change))
        written.append(path)
    return written
