"""Connections: --dsn, else DATABASE_URL, else libpq's PG* variables."""

from __future__ import annotations

import os

import psycopg

from .errors import ConnectError


def resolve_dsn(dsn: str | None) -> str:
    """The conninfo to use; an empty string lets libpq read PGHOST, PGDATABASE, ..."""
    if dsn:
        return dsn
    return os.environ.get("DATABASE_URL", "")


def connect(dsn: str, autocommit: bool = False) -> psycopg.Connection:
    try:
        return psycopg.connect(dsn, autocommit=autocommit, connect_timeout=10)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "connection failed"
        raise ConnectError(f"cannot connect to the database: {first}") from exc
