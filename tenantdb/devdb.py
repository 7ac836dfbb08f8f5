"""`tenantdb reset`: drop a development database and create it again.

Only a database tenantdb made for development is reset without --force:
one made by `tenantdb up` or `tenantdb reset`, which mark it with a
comment on the database (MARK), or one a DBA marked so by hand.
"""

from __future__ import annotations

from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .db import connect
from .errors import Refused, UsageProblem

PROTECTED = {"postgres", "template0", "template1"}
MARK = "tenantdb: development database (tenantdb reset may drop it)"


def describe(dsn: str) -> tuple[str, str]:
    """(database name, host:port) of the DSN's database, as the server reports them."""
    with connect(dsn, autocommit=True) as conn:
        return conn.info.dbname, f"{conn.info.host}:{conn.info.port}"


def is_development(dsn: str) -> bool:
    """Whether the DSN's database carries tenantdb's development mark."""
    with connect(dsn, autocommit=True) as conn:
        return conn.execute(
            "select pg_catalog.shobj_description(d.oid, 'pg_database') = %s "
            "from pg_catalog.pg_database d where d.datname = current_database()", (MARK,)).fetchone()[0] is True


def mark(dsn: str) -> None:
    """Mark the DSN's database as tenantdb's development database."""
    with connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("comment on database {} is {}").format(sql.Identifier(conn.info.dbname), sql.Literal(MARK)))


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def check_resettable(dsn: str, force: bool) -> tuple[str, str]:
    """(name, host:port) of a database reset may drop; refuses the maintenance
    database and templates always (exit 2), and an unmarked database
    without force (exit 6)."""
    name, where = describe(dsn)
    if name in PROTECTED:
        raise UsageProblem(f"tenantdb reset refuses database {name}: point it at a database of its own")
    if not force and not is_development(dsn):
        raise Refused(
            f"database {name} on {where} was not made by tenantdb for development (`tenantdb up` and `tenantdb reset` "
            f"mark theirs), so reset refuses to drop it. If it is a development database of yours, mark it once: "
            f"comment on database {_quoted(name)} is '{MARK}'; or pass --force. Nothing was dropped.")
    return name, where


def recreate(dsn: str) -> None:
    """Drop the DSN's database (closing its sessions), create it empty from
    the maintenance database postgres, and mark it for development."""
    name, _ = describe(dsn)
    if name in PROTECTED:
        raise UsageProblem(f"tenantdb reset refuses database {name}: point it at a database of its own")
    params = conninfo_to_dict(dsn)
    admin = make_conninfo(dsn, dbname="postgres") if params else "dbname=postgres"
    with connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("comment on database {} is {}").format(sql.Identifier(name), sql.Literal(MARK)))
