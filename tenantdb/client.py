"""Requests as PostgREST makes them, for a back end that talks to Postgres
directly (psycopg 3).

PostgREST runs each HTTP request as one transaction: it switches to the
role the JWT names (`set local role`, written `set_config('role', …, true)`),
puts the JWT's claims in `request.jwt.claims` (where `auth.uid()`,
`auth.jwt()` and `auth.role()` read them) and calls the pre-request
function, `scope_request`, which narrows a request that names an active
organization to the role `organization_scoped`. The blocks below do the
same, so policies and API functions see exactly the caller a supabase-js
or PostgREST request would have:

    from tenantdb.client import as_anon, as_service, as_user, connect

    with connect(dsn) as conn:                     # autocommit: one transaction per block
        with as_user(conn, user_id):               # the user's own JWT
            conn.execute("select * from public.create_organization(p_name => %s, p_slug => %s)", ...)
        with as_user(conn, user_id, organization_id=org):   # scoped to one organization
            conn.execute("select * from billing.invoices order by period_start desc limit 50")
        with as_service(conn):                     # the service role key: back end only
            conn.execute("select * from public.ingest_payment_event(...)", ...)

Connect as a login role made for the back end (`login noinherit`,
granted `anon`, `authenticated`, `organization_scoped` and
`service_role`; docs/app-guide.md), never as a superuser: outside these
blocks such a role reads nothing, and inside them it is exactly the caller
it switched to. The switch ends with the block's transaction, whether it
commits or raises.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg
from psycopg import pq, sql

__all__ = ["connect", "request", "as_user", "as_service", "as_anon", "sign_up"]

# What PostgREST runs first in every request's transaction (claims, then the role).
SWITCH = "select set_config('request.jwt.claims', %s, true), set_config('role', %s, true)"


def connect(dsn: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """A connection for request blocks: autocommit, so that each block is one
    transaction and its role switch ends with it. Keyword arguments go to
    psycopg.connect (e.g. prepare_threshold=None behind a transaction pooler)."""
    return psycopg.connect(dsn, autocommit=True, **kwargs)


@contextmanager
def request(conn: psycopg.Connection[Any], role: str, claims: Mapping[str, Any], *,
            api_schema: str = "public") -> Iterator[psycopg.Connection[Any]]:
    """One request as PostgREST runs it: a transaction in which the database
    role is `role` and `request.jwt.claims` holds `claims`. When the claims
    name an active organization (`organization_id`) of a signed-in request, the
    pre-request `<api_schema>.scope_request()` runs too, as PostgREST's
    `db-pre-request` does: it switches to `organization_scoped`, or refuses
    (42501 not a member, 22P02 not a uuid) before the block runs.

    The login role must be granted `role` (and `organization_scoped` for a
    scoped request): Postgres refuses the switch otherwise (42501).
    Refuses (ValueError) a connection that is not in autocommit mode or is
    inside a transaction: the switch would outlive the block."""
    if not conn.autocommit:
        raise ValueError("use an autocommit connection (tenantdb.client.connect): each request is its own transaction")
    if conn.info.transaction_status != pq.TransactionStatus.IDLE:
        raise ValueError("a request block cannot run inside an open transaction: its role switch would outlive the block")
    with conn.transaction():
        conn.execute(SWITCH, (json.dumps(dict(claims)), role))
        if role == "authenticated" and claims.get("organization_id"):
            # scope_request does nothing for a request that names no organization; skip the round trip.
            conn.execute(sql.SQL("select {}.scope_request()").format(sql.Identifier(api_schema)))
        yield conn


def as_user(conn: psycopg.Connection[Any], user_id: str, *, organization_id: str | None = None,
            claims: Mapping[str, Any] | None = None,
            api_schema: str = "public") -> AbstractContextManager[psycopg.Connection[Any]]:
    """One request of a signed-in user: role `authenticated`, claims `sub`,
    `role`, `aud` (as Supabase Auth's tokens carry them), `organization_id`
    when given (the request's active organization: the block reads and writes
    that organization's rows only), and any extra `claims`."""
    token: dict[str, Any] = {"sub": str(user_id), "role": "authenticated", "aud": "authenticated"}
    if organization_id is not None:
        token["organization_id"] = str(organization_id)
    token.update(claims or {})
    return request(conn, "authenticated", token, api_schema=api_schema)


def as_service(conn: psycopg.Connection[Any], *, user_id: str | None = None,
               claims: Mapping[str, Any] | None = None) -> AbstractContextManager[psycopg.Connection[Any]]:
    """One request made with the service role key: role `service_role`, a
    trusted back-end caller that bypasses row-level security. `user_id` puts
    a `sub` in the claims, for the few calls that act on a user's behalf
    (an insert into client_services.organizations needs its owner)."""
    token: dict[str, Any] = {"role": "service_role"}
    if user_id is not None:
        token["sub"] = str(user_id)
    token.update(claims or {})
    return request(conn, "service_role", token)


def as_anon(conn: psycopg.Connection[Any]) -> AbstractContextManager[psycopg.Connection[Any]]:
    """One request without a signed-in user (PostgREST's db-anon-role, the
    anon key): role `anon`, which tenantdb grants almost nothing."""
    return request(conn, "anon", {"role": "anon"})


def sign_up(conn: psycopg.Connection[Any], email: str) -> str:
    """Stands in for an auth service's sign-up: a row in `auth.users`
    (tenantdb's shim on the postgres target), written as the connection's own
    role, outside any request block; its triggers make the profile and the
    personal organization. Returns the new user's id. The role needs
    `insert (email)` and `select (id)` on auth.users (the owner has them; a
    back-end login role only when granted, docs/app-guide.md). On Supabase,
    Supabase Auth signs users up."""
    row = conn.execute("insert into auth.users (email) values (%s) returning id", (email,)).fetchone()
    assert row is not None
    return str(row[0])
