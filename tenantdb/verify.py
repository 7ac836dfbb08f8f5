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
    defined = {f for change in engine.changes for f in change.functions}
    with connect(engine.dsn, autocommit=True) as conn:
        # private belongs to tenantdb: a function there that no file defines
        # is a leftover of an older release (a removed helper keeps its grants).
        if conn.execute("select to_regnamespace('private') is not null").fetchone()[0] and not st.pending:
            rows = conn.execute(
                "select 'private.' || p.proname, p.oid::regprocedure::text from pg_proc p "
                "where p.pronamespace = 'private'::regnamespace "
                "and not exists (select from pg_depend d where d.objid = p.oid and d.deptype = 'e')"
            ).fetchall()
            found += [Problem("leftover", sig, "function in private that no file of this package defines")
                      for name, sig in rows if name not in defined]
        for relpath, sql in engine.renderer.checks():
            try:
                rows = conn.execute(sql.encode()).fetchall()
            except psycopg.Error as exc:
                raise StatementError(relpath, sql, exc) from exc
            found += [Problem(*row) for row in rows]
    return found


def as_json(found: list[Problem]) -> list[dict[str, str]]:
    return [asdict(p) for p in found]
