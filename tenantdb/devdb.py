"""`tenantdb reset`: drop a development database and create it again."""

from __future__ import annotations

from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .db import connect
from .errors import UsageProblem

PROTECTED = {"postgres", "template0", "template1"}


def database_name(dsn: str) -> str:
    """The database the DSN names (libpq's default: the user's name)."""
    with connect(dsn, autocommit=True) as conn:
        return conn.info.dbname


def check_resettable(name: str) -> None:
    if name in PROTECTED:
        raise UsageProblem(f"tenantdb reset refuses database {name}: point it at a database of its own")


def recreate(dsn: str) -> None:
    """Drop the DSN's database (closing its sessions) and create it empty,
    from the maintenance database postgres. Refuses postgres and templates."""
    name = database_name(dsn)
    check_resettable(name)
    params = conninfo_to_dict(dsn)
    admin = make_conninfo(dsn, dbname="postgres") if params else "dbname=postgres"
    with connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
