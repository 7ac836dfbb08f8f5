"""What a run of DDL would destroy: the tables holding rows and the columns
holding values that it drops.

`guarded(conn, run, ...)` runs `run()` in the caller's transaction under a
savepoint, compares the catalog before and after, and — when something that
held data is gone — undoes the run, counts what would be lost, and either
refuses (DataLoss, nothing changed) or runs it again and returns the list.
A run that drops nothing holding data runs once.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg
from psycopg import sql

from .errors import DataLoss, TenantdbError

CAP = 1_000_000  # counts stop here: "more than 1,000,000 rows"

# Ordinary and partitioned tables outside the system schemas and tenantdb's
# bookkeeping. Whether each holds a row is asked table by table (row
# security off, so a policy cannot hide rows from the check: a role it
# would apply to gets 42501 instead of a wrong "empty").
_TABLES = """
select c.oid, pg_catalog.format('%I.%I', n.nspname, c.relname)
  from pg_catalog.pg_class c
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
 where c.relkind in ('r', 'p') and not c.relispartition
   and n.nspname not in ('pg_catalog', 'information_schema', 'tenantdb', 'pg_toast')
   and n.nspname not like 'pg\\_temp\\_%' and n.nspname not like 'pg\\_toast\\_temp\\_%'
"""

_COLUMNS = """
select a.attrelid, a.attnum, pg_catalog.format('%I.%I', n.nspname, c.relname), a.attname
  from pg_catalog.pg_attribute a
  join pg_catalog.pg_class c on c.oid = a.attrelid
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
 where c.relkind in ('r', 'p') and not c.relispartition and a.attnum > 0 and not a.attisdropped
   and n.nspname not in ('pg_catalog', 'information_schema', 'tenantdb', 'pg_toast')
   and n.nspname not like 'pg\\_temp\\_%'
"""


def _snapshot(conn: psycopg.Connection, source: str) -> tuple[dict[int, tuple[str, bool]], dict[tuple[int, int], tuple[str, str]]]:
    try:
        conn.execute("set local row_security = off")
        tables = {oid: (name, conn.execute(sql.SQL("select exists (select from {})").format(sql.SQL(name))).fetchone()[0])
                  for oid, name in conn.execute(_TABLES).fetchall()}
    except psycopg.errors.InsufficientPrivilege as exc:
        raise TenantdbError(f"{source}: cannot tell which tables hold rows ({exc.diag.message_primary}); run it as the "
                            "tables' owner with BYPASSRLS, or a superuser. Nothing was changed.") from exc
    columns = {(rel, num): (table, col) for rel, num, table, col in conn.execute(_COLUMNS).fetchall()}
    return tables, columns


def _count(conn: psycopg.Connection, table: str, column: str | None = None) -> int:
    target = sql.SQL(table)  # format('%I.%I'): quoted as SQL needs it
    where = sql.SQL("where {} is not null").format(sql.Identifier(column)) if column else sql.SQL("")
    query = sql.SQL("select count(*) from (select from {} {} limit {}) s").format(target, where, sql.Literal(CAP + 1))
    return conn.execute(query).fetchone()[0]


def _described(n: int, what: str) -> str:
    return f"more than {CAP:,} {what}" if n > CAP else f"{n:,} {what}" if n != 1 else f"1 {what.rstrip('s')}"


def guarded(conn: psycopg.Connection, run: Callable[[], None], source: str, allow: bool) -> list[str]:
    """Run run() in conn's transaction; return what it dropped that held data
    ("crm.people (1,234 rows)", "app.projects.name (12 values)"), refusing
    with DataLoss, before anything is changed, unless allow."""
    tables, columns = _snapshot(conn, source)
    conn.execute("savepoint tenantdb_dataloss")
    run()
    after = {oid for (oid,) in conn.execute(
        "select c.oid from pg_catalog.pg_class c where c.oid = any(%s)", (list(tables),)).fetchall()}
    gone_tables = [(name, full) for oid, (name, full) in tables.items() if oid not in after]
    gone_columns = [(table, col) for key, (table, col) in columns.items() if key[0] in after and key not in {
        (rel, num) for rel, num in conn.execute(
            "select a.attrelid, a.attnum from pg_catalog.pg_attribute a where a.attrelid = any(%s) "
            "and a.attnum > 0 and not a.attisdropped", (list(after),)).fetchall()}]
    if not any(full for _, full in gone_tables) and not gone_columns:
        conn.execute("release savepoint tenantdb_dataloss")
        return []
    conn.execute("rollback to savepoint tenantdb_dataloss")
    lost = [f"{name} ({_described(_count(conn, name), 'rows')})" for name, full in gone_tables if full]
    for table, col in gone_columns:
        n = _count(conn, table, col)
        if n:
            lost.append(f"{table}.{col} ({_described(n, 'values')})")
    if lost and not allow:
        raise DataLoss(source, lost)
    run()
    conn.execute("release savepoint tenantdb_dataloss")
    return lost
