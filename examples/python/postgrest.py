"""What PostgREST does for every request, for a back end that talks to
Postgres directly (psycopg 3).

PostgREST runs each HTTP request as one transaction: it switches to the
role the JWT names (`set local role`, written `set_config('role', …, true)`)
and puts the JWT's claims in `request.jwt.claims`, where `auth.uid()`,
`auth.jwt()` and `auth.role()` read them. The policies and the API
functions then see exactly the caller a supabase-js request would have.

    with as_user(conn, user_id):      # the user's own JWT (anon key + session)
        conn.execute("select * from public.create_organization(p_name => %s, p_slug => %s)", ...)
    with as_service(conn):            # the service role key: back end only
        conn.execute("select * from public.ingest_payment_event(...)", ...)

The connection must be in autocommit mode (`connect` below), so that each
`with` block is its own transaction and its role switch ends with it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import psycopg

SWITCH = "select set_config('request.jwt.claims', %s, true), set_config('role', %s, true)"


def connect(dsn: str) -> psycopg.Connection:
    """A connection for request blocks: autocommit, so each block is one transaction."""
    return psycopg.connect(dsn, autocommit=True)


@contextmanager
def _request(conn: psycopg.Connection, role: str, claims: dict) -> Iterator[psycopg.Connection]:
    if not conn.autocommit:
        # Inside an open transaction the role switch would outlive the block.
        raise ValueError("use an autocommit connection (postgrest.connect): each request is its own transaction")
    with conn.transaction():
        conn.execute(SWITCH, (json.dumps(claims), role))
        yield conn


def as_user(conn: psycopg.Connection, user_id: str) -> AbstractContextManager[psycopg.Connection]:
    """One request of a signed-in user: role `authenticated`, claims with `sub`."""
    return _request(conn, "authenticated", {"sub": str(user_id), "role": "authenticated", "aud": "authenticated"})


def as_service(conn: psycopg.Connection) -> AbstractContextManager[psycopg.Connection]:
    """One request made with the service role key (trusted back end, bypasses RLS)."""
    return _request(conn, "service_role", {"role": "service_role"})


def sign_up(conn: psycopg.Connection, email: str) -> str:
    """Stands in for Supabase Auth's sign-up in these examples: a row in
    `auth.users` (tenantdb's shim on the postgres target), written as the
    DSN's own role. Triggers make the profile and the personal organization.
    A real app signs users up through Supabase Auth (or its own auth)."""
    return str(conn.execute("insert into auth.users (email) values (%s) returning id", (email,)).fetchone()[0])


def run_example(main, doc: str | None) -> None:
    """The command line of every example: one argument, the DSN."""
    if len(sys.argv) != 2:
        sys.exit(doc)
    main(sys.argv[1])
