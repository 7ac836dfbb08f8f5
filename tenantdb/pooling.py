"""Connection poolers: tell when a connection string reaches PostgreSQL through
a pooler in transaction mode (pgbouncer pool_mode=transaction, Supavisor's
transaction port 6543), where one client connection may be served by a
different server session at each transaction.

tenantdb's commands keep nothing in the session (transaction-scoped locks
and settings, no prepared statements), so a pooled connection cannot keep
a lock or a setting of theirs. migrate, rollback, adopt and reset still
refuse one: a DBA's change to the schema belongs on a session of its own
(a direct connection, or a session-mode pool), where an interrupted run is
the session's end and pg_stat_activity shows who is running it.
"""

from __future__ import annotations

from psycopg.conninfo import conninfo_to_dict

from .db import connect
from .errors import PooledConnection

FIX = ("connect directly to PostgreSQL, or through a session-mode pool, for migrations: on Supabase the direct "
       "connection (db.<project>.supabase.co:5432) or the pooler's session mode (port 5432, not 6543); with pgbouncer "
       "a [databases] entry with pool_mode=session. Nothing was changed.")


def _where(dsn: str) -> str:
    params = conninfo_to_dict(dsn)
    host = params.get("host") or "the default host"
    return f"{host}:{params.get('port') or 5432}"


def server_sessions(dsn: str) -> list[int]:
    """The server pids that two client connections see over four
    alternating transactions (a, b, a, b). A direct or session-pooled
    connection keeps one pid, and two connections never share one."""
    with connect(dsn, autocommit=True) as a, connect(dsn, autocommit=True) as b:
        return [conn.execute("select pg_catalog.pg_backend_pid()").fetchone()[0] for conn in (a, b, a, b)]


def refuse_transaction_pooler(dsn: str) -> None:
    """Raise PooledConnection (exit 3) when the DSN reaches a transaction
    pooler: one client connection moved to another server session, or two
    client connections shared one. A pooler with other traffic shows it at
    once; an idle one hands the session just released to the next
    connection (pgbouncer's default), which shows it too."""
    a1, b1, a2, b2 = server_sessions(dsn)
    if a1 != a2 or b1 != b2 or {a1, a2} & {b1, b2}:
        raise PooledConnection(
            f"{_where(dsn)} is a connection pooler in transaction mode (two connections were served by server "
            f"sessions {a1}, {b1}, {a2}, {b2} in turn); {FIX}")


def moved(dsn: str, first: int, now: int) -> PooledConnection:
    """The error of a run whose connection changed server session midway."""
    return PooledConnection(
        f"{_where(dsn)}: this connection moved from server session {first} to {now} between two transactions: a "
        f"connection pooler in transaction mode is in between, and the run stopped (every change it committed is "
        f"whole; run it again over a session connection); {FIX.replace(' Nothing was changed.', '')}")
