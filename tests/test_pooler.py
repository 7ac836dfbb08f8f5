"""PostgREST's role switch through pgbouncer in transaction mode.

PostgREST runs every request as one transaction on a pooled connection:
begin; set local role <token role>; set_config('request.jwt.claims',
<claims>, true); <the request>; commit. Behind pgbouncer in transaction
mode the next transaction on that server connection is another client's,
and pgbouncer runs no reset query between them: only the transaction-local
settings keep one request's identity out of the next.

16 clients (threads, each on its own psycopg connection, no prepared
statements) share 4 server connections; each client is a different user,
the owner of a different organization with projects of its own. Every
request must see exactly its own user and organization, and start and leave
its server connection with no role or claims: 0 bleed. The negative control
runs the same pattern with session-level settings (set role,
set_config(..., false)) and must see bleed, which proves the first test can.
The session-mode contrast: the same session-level settings are safe through
a pool_mode = session pooler, whose reset query (DISCARD ALL) runs before a
server connection passes to another client.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from test_projects import owner_and_org

CLIENTS = 16
REQUESTS = 25  # per client: 400 requests in all
POOL_SIZE = 4  # default_pool_size of the pgbouncer fixture

# What a server connection carries when a request starts or after it ended.
STATE = ("select pg_backend_pid(), current_user::text, current_setting('role'), "
         "coalesce(current_setting('request.jwt.claims', true), ''), auth.uid()::text")
# What the request sees as its user: its identity and the projects it can read.
READ = ("select pg_backend_pid(), current_user::text, auth.uid()::text, "
        "coalesce((select array_agg(title order by title) from app.projects), '{}'), "
        "coalesce((select array_agg(distinct organization_id::text) from app.projects), '{}')")


@dataclass(frozen=True)
class Tenant:
    index: int
    uid: str
    org: str
    titles: list[str]

    @property
    def claims(self) -> str:
        return json.dumps({"sub": self.uid, "role": "authenticated"})


@dataclass(frozen=True)
class State:
    pid: int
    current_user: str
    role: str  # current_setting('role'): 'none' unless a set role is in force
    claims: str
    uid: str | None


@dataclass(frozen=True)
class Seen:
    pid: int
    current_user: str
    uid: str | None
    titles: list[str]
    orgs: list[str]


@dataclass(frozen=True)
class Request:
    tenant: Tenant
    before: State  # first statement of the transaction, before the role switch
    seen: Seen     # inside the transaction, after it
    after: State   # the next statement, a transaction of its own (autocommit)


@pytest.fixture
def tenants(dsn: str) -> list[Tenant]:
    """CLIENTS users, each the owner of their personal organization with two projects."""
    made = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for i in range(CLIENTS):
            uid, org = owner_and_org(conn, f"pooled{i}@pool.test")
            titles = [f"client {i:02} project a", f"client {i:02} project b"]
            for title in titles:
                conn.execute("insert into app.projects (organization_id, title) values (%s, %s)", (org, title))
            made.append(Tenant(i, uid, org, titles))
    return made


def clean(state: State, login: str) -> bool:
    return (state.current_user, state.role, state.claims, state.uid) == (login, "none", "", None)


def request(conn: psycopg.Connection, tenant: Tenant, local: bool = True) -> Request:
    """PostgREST's pattern: role and claims set for the transaction only
    (local); with local=False, the broken pattern: the same settings at
    session level."""
    with conn.transaction():
        before = State(*conn.execute(STATE).fetchone())
        conn.execute("set local role authenticated" if local else "set role authenticated")
        conn.execute("select set_config('request.jwt.claims', %s, %s)", (tenant.claims, local))
        seen = Seen(*conn.execute(READ).fetchone())
    return Request(tenant, before, seen, State(*conn.execute(STATE).fetchone()))


def local_request(conn: psycopg.Connection, tenant: Tenant) -> Request:
    return request(conn, tenant, local=True)


def session_request(conn: psycopg.Connection, tenant: Tenant) -> Request:
    return request(conn, tenant, local=False)


def run_clients(conninfo: str, tenants: list[Tenant], request: Callable[[psycopg.Connection, Tenant], Request],
                connection_per_request: bool = False) -> list[Request]:
    """Each tenant's client in a thread of its own, all started together,
    REQUESTS requests each; on one connection, or a new one per request."""
    barrier = threading.Barrier(len(tenants))
    done: list[list[Request]] = [[] for _ in tenants]
    errors: list[BaseException] = []

    def connect() -> psycopg.Connection:
        return psycopg.connect(conninfo, autocommit=True, prepare_threshold=None, connect_timeout=10)

    def client(tenant: Tenant) -> None:
        try:
            barrier.wait(timeout=30)
            if connection_per_request:
                for _ in range(REQUESTS):
                    with connect() as conn:
                        done[tenant.index].append(request(conn, tenant))
            else:
                with connect() as conn:
                    for _ in range(REQUESTS):
                        done[tenant.index].append(request(conn, tenant))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=client, args=(t,)) for t in tenants]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a client hung"
    if errors:
        raise errors[0]
    return [r for per_client in done for r in per_client]


def assert_shared(requests: list[Request]) -> None:
    """16 clients really went through at most 4 server connections, each
    used by more than one user."""
    users_by_pid: dict[int, set[str]] = {}
    for r in requests:
        assert r.before.pid == r.seen.pid, "a transaction moved between server connections"
        users_by_pid.setdefault(r.seen.pid, set()).add(r.tenant.uid)
    assert len(users_by_pid) <= POOL_SIZE, users_by_pid.keys()
    assert all(len(users) > 1 for users in users_by_pid.values()), {p: len(u) for p, u in users_by_pid.items()}


def test_transaction_local_role_switch_does_not_bleed_through_pgbouncer(pgbouncer, dsn: str, tenants: list[Tenant]) -> None:
    login = conninfo_to_dict(dsn)["user"]
    requests = run_clients(pgbouncer.reroute(dsn), tenants, local_request)
    assert len(requests) == CLIENTS * REQUESTS
    assert_shared(requests)
    for r in requests:
        t = r.tenant
        assert (r.seen.current_user, r.seen.uid) == ("authenticated", t.uid), r
        assert r.seen.titles == t.titles and r.seen.orgs == [t.org], r
        assert clean(r.before, login), r
        assert clean(r.after, login), r


def test_session_level_role_switch_bleeds_through_pgbouncer(pgbouncer, dsn: str, tenants: list[Tenant]) -> None:
    """Negative control: with set role / set_config(..., false) a server
    connection keeps the last request's role and claims; the next
    transaction on it, another client's, starts as that user."""
    login, dbname = conninfo_to_dict(dsn)["user"], conninfo_to_dict(dsn)["dbname"]
    try:
        requests = run_clients(pgbouncer.reroute(dsn), tenants, session_request)
    finally:
        pgbouncer.close_server_connections(dbname)  # no dirty server connection outlives this test
    assert_shared(requests)
    # Each request still sees itself: it overwrote what it inherited ...
    for r in requests:
        assert (r.seen.uid, r.seen.titles) == (r.tenant.uid, r.tenant.titles), r
    # ... but only the first request on each server connection started
    # clean; every other one started with a role and claims it did not set,
    dirty_starts = [r for r in requests if not clean(r.before, login)]
    assert len(dirty_starts) >= len(requests) - POOL_SIZE
    assert all(r.before.current_user == "authenticated" for r in dirty_starts)
    # many of them another client's identity, and a statement after a
    # request (which set nothing) ran as another client.
    foreign_starts = [r for r in dirty_starts if r.before.uid != r.tenant.uid]
    foreign_after = [r for r in requests if r.after.uid not in (None, r.tenant.uid)]
    assert foreign_starts and foreign_after, (len(foreign_starts), len(foreign_after))
    uids = {t.uid for t in tenants}
    assert {r.before.uid for r in foreign_starts} <= uids


def test_session_pool_mode_resets_session_level_settings(pgbouncer, dsn: str, tenants: list[Tenant]) -> None:
    """Contrast: through pool_mode = session a server connection serves one
    client until it disconnects, then pgbouncer's server_reset_query
    (DISCARD ALL) clears role and claims before the next client gets it.
    Each request on a new client connection."""
    login = conninfo_to_dict(dsn)["user"]
    session_pooler = pgbouncer.with_mode("session")
    assert session_pooler.port != pgbouncer.port
    requests = run_clients(session_pooler.reroute(dsn), tenants, session_request, connection_per_request=True)
    assert len(requests) == CLIENTS * REQUESTS
    assert_shared(requests)
    for r in requests:
        assert (r.seen.current_user, r.seen.uid, r.seen.titles) == ("authenticated", r.tenant.uid, r.tenant.titles), r
        assert clean(r.before, login), r
        # Still the same client connection, so the same server connection: its own settings, nobody else's.
        assert (r.after.pid, r.after.uid, r.after.current_user) == (r.seen.pid, r.tenant.uid, "authenticated"), r
