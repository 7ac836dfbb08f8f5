"""What a run of DDL would destroy: the tables (partitions included) holding
rows and the columns holding values that it drops.

`guarded(conn, run, ...)` notes which tables hold a row, runs `run()` in the
caller's transaction under a savepoint, and compares the catalog before and
after. When something that held data (or that could not be read) is gone,
it undoes the run, counts what would be lost, and either refuses (DataLoss,
nothing changed) or runs it again and returns the list. A run that drops
only empty tables runs once.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg
from psycopg import sql

from .errors import DataLoss

CAP = 1_000_000  # counts stop here: "more than 1,000,000 rows"
_SYSTEM = """n.nspname not in ('pg_catalog', 'information_schema', 'tenantdb', 'pg_toast')
   and n.nspname not like 'pg\\_temp\\_%' and n.nspname not like 'pg\\_toast\\_temp\\_%'"""

# Ordinary and partitioned tables and their partitions, outside the system
# schemas and tenantdb's bookkeeping, each with its parent (partitions).
_TABLES = f"""
select c.oid, pg_catalog.format('%I.%I', n.nspname, c.relname),
       (select i.inhparent from pg_catalog.pg_inherits i where i.inhrelid = c.oid and c.relispartition)
  from pg_catalog.pg_class c
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
 where c.relkind in ('r', 'p') and {_SYSTEM}
"""

# Columns of the tables a column can be dropped from (a partition's follow its parent's).
_COLUMNS = f"""
select a.attrelid, a.attnum, pg_catalog.format('%I.%I', n.nspname, c.relname), a.attname
  from pg_catalog.pg_attribute a
  join pg_catalog.pg_class c on c.oid = a.attrelid
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
 where c.relkind in ('r', 'p') and not c.relispartition and a.attnum > 0 and not a.attisdropped and {_SYSTEM}
"""

UNKNOWN = None  # a table whose rows could not be read: row security, or no SELECT privilege


def _count(conn: psycopg.Connection, table: str, column: str | None = None) -> int:
    target = sql.SQL(table)  # format('%I.%I'): quoted as SQL needs it
    where = sql.SQL("where {} is not null").format(sql.Identifier(column)) if column else sql.SQL("")
    query = sql.SQL("select count(*) from (select from {} {} limit {}) s").format(target, where, sql.Literal(CAP + 1))
    return conn.execute(query).fetchone()[0]


def _unshielded(conn: psycopg.Connection, query: Callable[[], object]) -> object:
    """query() with row security off (so a policy cannot hide rows: a role it
    would apply to gets an error instead of a wrong "empty"), under a
    savepoint; UNKNOWN when it is refused. The setting is put back after."""
    conn.execute("savepoint tenantdb_probe")
    try:
        conn.execute("select pg_catalog.set_config('row_security', 'off', true)")
        answer = query()
    except psycopg.errors.InsufficientPrivilege:
        answer = UNKNOWN
    # back to before the probe (row_security as it was; the probe wrote nothing), and no savepoint left open
    conn.execute("rollback to savepoint tenantdb_probe")
    conn.execute("release savepoint tenantdb_probe")
    return answer


def _holds_rows(conn: psycopg.Connection, table: str) -> bool | None:
    return _unshielded(conn, lambda: conn.execute(sql.SQL("select exists (select from {})").format(sql.SQL(table))).fetchone()[0])


def _described(n: int, what: str) -> str:
    return f"more than {CAP:,} {what}" if n > CAP else f"{n:,} {what}" if n != 1 else f"1 {what.rstrip('s')}"


def guarded(conn: psycopg.Connection, run: Callable[[], None], source: str, allow: bool) -> list[str]:
    """Run run() in conn's transaction; return what it dropped that held data
    ("crm.people (1,234 rows)", "app.projects.name (12 values)"), refusing
    with DataLoss, before anything is changed, unless allow."""
    tables = {oid: (name, parent) for oid, name, parent in conn.execute(_TABLES).fetchall()}
    rows = {oid: _holds_rows(conn, name) for oid, (name, _) in tables.items()}
    columns = {(rel, num): (table, col) for rel, num, table, col in conn.execute(_COLUMNS).fetchall()}
    conn.execute("savepoint tenantdb_dataloss")
    run()
    after = {oid for (oid,) in conn.execute(
        "select c.oid from pg_catalog.pg_class c where c.oid = any(%s)", (list(tables),)).fetchall()}
    kept_columns = {(rel, num) for rel, num in conn.execute(
        "select a.attrelid, a.attnum from pg_catalog.pg_attribute a where a.attrelid = any(%s) "
        "and a.attnum > 0 and not a.attisdropped", (list(after),)).fetchall()}
    # a gone partition of a gone parent is counted with its parent
    gone_tables = [oid for oid, (_, parent) in tables.items()
                   if oid not in after and (parent is None or parent in after) and rows[oid] is not False]
    gone_columns = [(table, col) for key, (table, col) in columns.items() if key[0] in after and key not in kept_columns]
    if not gone_tables and not gone_columns:
        conn.execute("release savepoint tenantdb_dataloss")
        return []
    conn.execute("rollback to savepoint tenantdb_dataloss")
    lost: list[str] = []
    for oid in gone_tables:
        name = tables[oid][0]
        n = _unshielded(conn, lambda name=name: _count(conn, name))
        if n is UNKNOWN:
            lost.append(f"{name} (rows not counted: row security or privileges hide them from this role)")
        elif n:
            lost.append(f"{name} ({_described(n, 'rows')})")
    for table, col in gone_columns:
        n = _unshielded(conn, lambda table=table, col=col: _count(conn, table, col))
        if n is UNKNOWN:
            lost.append(f"{table}.{col} (values not counted: row security or privileges hide them from this role)")
        elif n:
            lost.append(f"{table}.{col} ({_described(n, 'values')})")
    if lost and not allow:
        raise DataLoss(source, lost)
    run()
    conn.execute("release savepoint tenantdb_dataloss")
    return lost
