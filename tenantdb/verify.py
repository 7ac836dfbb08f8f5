"""tenantdb verify: bookkeeping problems plus the catalog invariants."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import psycopg

from .appseed import SeedConflict
from .db import connect
from .engine import Engine
from .errors import StatementError
from .render import PACKAGE, project_of


PERSONAL_DATA_CHECK = """
select format('%s.%s.%s', n.nspname, c.relname, a.attname),
       'column is tagged @personal but missing from privacy.data_inventory'
  from pg_catalog.pg_attribute a
  join pg_catalog.pg_class c on c.oid = a.attrelid
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
 where a.attnum > 0 and not a.attisdropped and c.relkind in ('r', 'p') and not c.relispartition
   and col_description(c.oid, a.attnum) ~ '^@personal( |$)'
   and not exists (select from privacy.data_inventory i
                    where (i.schema_name, i.table_name, i.column_name) = (n.nspname::text, c.relname::text, a.attname::text))
union all
select format('%s.%s.%s', i.schema_name, i.table_name, i.column_name), 'inventoried column lost its @personal tag'
  from privacy.data_inventory i
  join pg_catalog.pg_attribute a on a.attrelid = to_regclass(format('%I.%I', i.schema_name, i.table_name))
                                and a.attname = i.column_name and not a.attisdropped
 where i.schema_name <> 'auth'
   and coalesce(col_description(a.attrelid, a.attnum), '') !~ '^@personal( |$)'
union all
select format('%s.%s.%s', i.schema_name, i.table_name, i.column_name), 'inventory names a column that does not exist'
  from privacy.data_inventory i
 where not exists (select from pg_catalog.pg_attribute a
                    where a.attrelid = to_regclass(format('%I.%I', i.schema_name, i.table_name))
                      and a.attname = i.column_name and not a.attisdropped)
"""


# The rows the seeds would write now, in a transaction that is rolled back:
# inserts per table (updates are an operator's edits, not missing rows).
SEED_INSERTS = """
select format('%I.%I', schemaname, relname), n_tup_ins
  from pg_catalog.pg_stat_xact_user_tables
 where n_tup_ins > 0 and schemaname not in ('audit', 'tenantdb')
 order by 1
"""


# Checks that read what the seeds declare: verify runs them after the seeds,
# in a transaction it rolls back (after_seeds).
SEEDED_CHECKS = "sql/checks/seeded"


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
    found += [Problem("unknown", c, "applied change of an app project: run verify in that project" if project_of(c) != PACKAGE
                      else "applied change not in this package") for c in st.unknown]
    if st.unmanaged:
        return [Problem("unmanaged", st.unmanaged, f"tenantdb's schemas without its history: {engine.adopt_hint()}")]
    if st.pending:
        # the checks read tables the pending changes make: the pending list comes first, alone
        return found + [Problem("checks", "-", "not run until the pending changes are applied: tenantdb migrate")]
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
        # Personal data: every column tagged @personal is in the inventory,
        # and every inventory row names a column that exists.
        if conn.execute("select to_regclass('privacy.data_inventory') is not null").fetchone()[0]:
            rows = conn.execute(PERSONAL_DATA_CHECK).fetchall()
            found += [Problem("personal_data", obj, detail) for obj, detail in rows]
        missing_rows, undeclared = after_seeds(engine, conn)
        found += missing_rows + run_checks(conn, engine.renderer.checks()) + undeclared
    return found


def run_checks(conn: psycopg.Connection, checks: list[tuple[str, str]]) -> list[Problem]:
    """The rendered checks' rows (check, object, detail): one per problem."""
    found = []
    for relpath, sql in checks:
        try:
            rows = conn.execute(sql.encode()).fetchall()
        except psycopg.Error as exc:
            raise StatementError(relpath, sql, exc) from exc
        found += [Problem(*row) for row in rows]
    return found


def after_seeds(engine: Engine, conn: psycopg.Connection) -> tuple[list[Problem], list[Problem]]:
    """(rows the seeds own that are gone, problems of the checks of what the
    seeds declare). The seeds, with the catalog the last `tenantdb seed`
    loaded, run in a transaction that is rolled back: every table they
    would insert into is missing rows (a rollback dropped the table and
    migrate made it again empty, say), and the checks (a permission a
    policy names that no seed declares) read what the seeds leave. Where
    the seeds cannot run (a standby, a read-only database, seeds that
    fail) the checks read the database as it is."""
    checks = engine.renderer.checks(SEEDED_CHECKS)
    if conn.execute("select pg_catalog.pg_is_in_recovery() or current_setting('transaction_read_only') = 'on' "
                    "or to_regprocedure('private.load_catalog(jsonb)') is null").fetchone()[0]:
        return [], run_checks(conn, checks)
    recorded = None
    if conn.execute("select to_regclass('tenantdb.seeded_catalog') is not null").fetchone()[0]:
        recorded = conn.execute("select source, document from tenantdb.seeded_catalog").fetchone()
    if recorded:
        source, document = recorded
    else:
        document, source = engine.catalog_document()
    with conn.transaction(force_rollback=True):
        conn.execute("set local lock_timeout = '5s'")
        try:
            with conn.transaction():  # a savepoint: seeds that fail leave the checks a usable transaction
                engine.load_seeds(conn, document, source, quiet=True)
                rows = conn.execute(SEED_INSERTS).fetchall()
        except (StatementError, SeedConflict) as exc:
            missing = [Problem("seeded", source, f"the seeds cannot run here: {exc}")]
        else:
            missing = [Problem("seeded", table, f"{n} row(s) the seeds own are missing (a rollback took them?): "
                               "run tenantdb seed") for table, n in rows]
        return missing, run_checks(conn, checks)


def as_json(found: list[Problem]) -> list[dict[str, str]]:
    return [asdict(p) for p in found]
