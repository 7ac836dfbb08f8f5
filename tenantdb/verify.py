"""tenantdb verify: bookkeeping problems plus the catalog invariants."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import psycopg

from .db import connect
from .engine import Engine
from .errors import StatementError


@dataclass
class Problem:
    check: str
    object: str
    detail: str


def problems(engine: Engine) -> list[Problem]:
    st = engine.status()
    found = [Problem("pending", c, "change not applied") for c in st.pending]
    found += [Problem("edited", c, "applied file changed since it ran") for c in st.edited]
    found += [Problem("stale", r, "repeatable changed since it was applied") for r in st.stale_repeatables]
    found += [Problem("unknown", c, "applied change not in this package") for c in st.unknown]
    with connect(engine.dsn, autocommit=True) as conn:
        for relpath, sql in engine.renderer.checks():
            try:
                rows = conn.execute(sql.encode()).fetchall()
            except psycopg.Error as exc:
                raise StatementError(relpath, sql, exc) from exc
            found += [Problem(*row) for row in rows]
    return found


def as_json(found: list[Problem]) -> list[dict[str, str]]:
    return [asdict(p) for p in found]
