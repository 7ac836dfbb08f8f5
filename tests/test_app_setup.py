"""docs/app-guide.md's production role setup, run as the page writes it.

The SQL blocks come from the page itself (the fenced block after each
`<!-- app-guide: NAME -->` marker), so the page and this test cannot
drift. On the test's fresh database they create PostgREST's
`authenticator` and the back end's `app_backend` (both `login
noinherit`), then:

- each login role is plain (not superuser, no BYPASSRLS, NOINHERIT) and,
  without switching, reaches nothing of the schema: no table or view, no
  API function, no switch to `postgres`;
- the page's request block, run as `app_backend`, makes an organization as
  a user, reads it alone as a scoped request and every organization as the
  service role; `tenantdb.client`'s blocks do the same;
- negative controls: another user's request for those rows returns none,
  and the emptiness check fails for a login role made without NOINHERIT;
- PostgREST's own statements (from its log) replayed as `authenticator`
  with the settings of the page's postgrest.conf;
- the page's token minter signs like every JWT library (jwt.io's example);
- every Python example runs as `app_backend` through examples/python/run_all.py.

Roles are cluster-wide: the fixture refuses to start when they exist and
drops them (with their grants in this database) at the end, pass or fail.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from conftest import ROOT
from tenantdb import client
from tenantdb.sqlsplit import split_statements

DOC = ROOT / "docs" / "app-guide.md"
RUN_ALL = ROOT / "examples" / "python" / "run_all.py"
BACKEND, AUTHENTICATOR = "app_backend", "authenticator"
# What a login role may reach without switching: the claim readers, which
# read only the caller's own request.jwt.claims (PUBLIC may execute them).
CLAIM_READERS = {"auth.uid()", "auth.jwt()", "auth.role()"}


def doc_block(name: str) -> str:
    """The fenced block after the marker `<!-- app-guide: NAME -->`, without
    the indentation of the list item it may sit in."""
    text = DOC.read_text()
    m = re.search(rf"^([ \t]*)<!-- app-guide: {re.escape(name)} -->\n[ \t]*```\w*\n(.*?)^[ \t]*```", text, re.S | re.M)
    assert m, f"docs/app-guide.md has no block after <!-- app-guide: {name} -->"
    indent = m.group(1)
    return "\n".join(line[len(indent):] if line.startswith(indent) else line for line in m.group(2).splitlines()) + "\n"


def statements(block: str) -> list[str]:
    return [s for _, s in split_statements(block) if code(s)]


def code(stmt: str) -> str:
    """A statement without its -- comments (the page's blocks have none inside strings)."""
    return "\n".join(line.split("--")[0].rstrip() for line in stmt.splitlines() if line.split("--")[0].strip()).strip()


def one(conn: psycopg.Connection, query: str, params: tuple = ()):
    return conn.execute(query, params).fetchone()


# --- the roles, as the page makes them ------------------------------------------

@dataclass
class Roles:
    admin: str  # the harness's superuser: the DBA, and the auth service of sign_up in the JS-free parts
    backend: str  # app_backend's DSN
    authenticator: str  # authenticator's DSN


def drop_roles(admin: str, names: list[str]) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        present = [r[0] for r in conn.execute("select rolname from pg_roles where rolname = any(%s)", (names,))]
        if not present:
            return
        conn.execute("select pg_terminate_backend(pid) from pg_stat_activity where usename = any(%s) and pid <> pg_backend_pid()",
                     (present,))
        idents = sql.SQL(", ").join(map(sql.Identifier, present))
        conn.execute(sql.SQL("drop owned by {}").format(idents))  # their grants in this database (auth.users)
        conn.execute(sql.SQL("drop role {}").format(idents))


@pytest.fixture
def roles(dsn: str) -> Iterator[Roles]:
    block = doc_block("roles")
    created = re.findall(r"^create role (\w+) login noinherit;", block, re.M)
    assert sorted(created) == sorted([BACKEND, AUTHENTICATOR]), f"the roles block creates {created}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        left = conn.execute("select rolname from pg_roles where rolname = any(%s)", (created,)).fetchall()
        assert not left, f"roles {left} already exist in this cluster: a test that made them did not drop them"
    password = secrets.token_urlsafe(16)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for stmt in statements(block) + statements(doc_block("signup")):
                conn.execute(stmt)
            for role in created:  # the page's next step: a password each (the harness trusts local connections anyway)
                conn.execute(sql.SQL("alter role {} password {}").format(sql.Identifier(role), sql.Literal(password)))
        yield Roles(dsn, make_conninfo(dsn, user=BACKEND, password=password),
                    make_conninfo(dsn, user=AUTHENTICATOR, password=password))
    finally:
        drop_roles(dsn, created)


# --- what a login role reaches without switching --------------------------------

def unswitched_reach(conn: psycopg.Connection) -> tuple[set[str], set[str]]:
    """(relations, functions) the connection's role may use as it is: any
    privilege on a table, view or sequence (or on a column of one) outside
    the system schemas, and execute on a function; an extension's own
    objects (the harness's pgTAP) left out."""
    relations = {r[0] for r in conn.execute(
        "select c.oid::regclass::text from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where c.relkind in ('r', 'p', 'v', 'm', 'f', 'S') "
        "and n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast') "
        "and not exists (select from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e') "
        "and (case when c.relkind = 'S' then has_sequence_privilege(c.oid, 'usage, select, update') "
        "     else has_table_privilege(c.oid, 'select, insert, update, delete, truncate, references, trigger') "
        "          or has_any_column_privilege(c.oid, 'select, insert, update, references') end)")}
    functions = {r[0] for r in conn.execute(
        "select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
        "where n.nspname not in ('pg_catalog', 'information_schema') "
        "and not exists (select from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e') "
        "and has_function_privilege(p.oid, 'execute')")}
    return relations, functions


TENANT_READS = ["tenancy.organizations", "tenancy.memberships", "billing.invoices", "usage.events", "identity.users"]


def assert_plain_and_empty(dsn: str, role: str, expected_relations: set[str], owner: str) -> None:
    """The role logs in, is no superuser, does not bypass RLS, inherits
    nothing, and reaches only expected_relations and the claim readers
    without switching; it cannot become the schema's owner."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert one(conn, "select current_user, session_user")[0] == role
        assert one(conn, "select rolsuper, rolbypassrls, rolinherit, rolcanlogin from pg_roles where rolname = current_user") == (
            False, False, False, True)
        relations, functions = unswitched_reach(conn)
        assert relations == expected_relations, f"{role} reaches {relations - expected_relations} without switching"
        assert functions <= CLAIM_READERS, f"{role} may execute {functions - CLAIM_READERS} without switching"
        for table in TENANT_READS:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"select count(*) from {table}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # a service-only function
            conn.execute("select public.renew_subscriptions()")
        # A claim is not a role: service_role's claims without the switch change nothing.
        with conn.transaction():
            conn.execute("select set_config('request.jwt.claims', '{\"role\": \"service_role\"}', true)")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                with conn.transaction():
                    conn.execute("select public.renew_subscriptions()")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                with conn.transaction():
                    conn.execute("select count(*) from tenancy.organizations")
        for target in [owner, *(["platform_staff"] if role == BACKEND else [])]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql.SQL("set role {}").format(sql.Identifier(target)))


def test_login_roles_are_plain_and_reach_nothing_unswitched(roles: Roles) -> None:
    owner = conninfo_to_dict(roles.admin)["user"]
    assert_plain_and_empty(roles.backend, BACKEND, {"auth.users"}, owner)  # the sign-up grant's columns, nothing else
    assert_plain_and_empty(roles.authenticator, AUTHENTICATOR, set(), owner)
    with psycopg.connect(roles.admin, autocommit=True) as conn:
        granted = {(r[0], r[1]) for r in conn.execute(
            "select m.rolname, r.rolname from pg_auth_members a join pg_roles r on r.oid = a.roleid "
            "join pg_roles m on m.oid = a.member where m.rolname in (%s, %s)", (BACKEND, AUTHENTICATOR))}
    assert granted == {(AUTHENTICATOR, r) for r in ("anon", "authenticated", "organization_scoped", "service_role", "platform_staff")} | {
        (BACKEND, r) for r in ("anon", "authenticated", "organization_scoped", "service_role")}


def test_negative_control_an_inheriting_login_role_fails_the_check(dsn: str) -> None:
    """A login role made without NOINHERIT holds its roles' privileges
    without switching: the emptiness check must say so."""
    role = f"inheriting_{uuid.uuid4().hex[:8]}"
    password = secrets.token_urlsafe(16)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("create role {} login password {}").format(sql.Identifier(role), sql.Literal(password)))
        conn.execute(sql.SQL("grant authenticated, service_role to {}").format(sql.Identifier(role)))
    try:
        with pytest.raises(AssertionError):
            assert_plain_and_empty(make_conninfo(dsn, user=role, password=password), role, set(),
                                   conninfo_to_dict(dsn)["user"])
        with psycopg.connect(make_conninfo(dsn, user=role, password=password), autocommit=True) as conn:
            relations, _ = unswitched_reach(conn)
            assert "tenancy.organizations" in relations and "billing.invoices" in relations
    finally:
        drop_roles(dsn, [role])


# --- requests through the role switch ---------------------------------------------

def test_the_pages_request_block_as_the_backend(roles: Roles) -> None:
    with client.connect(roles.backend) as conn:
        user = client.sign_up(conn, f"alice-{uuid.uuid4().hex[:8]}@example.com")  # the sign-up grant
        values = {"<user id>": user}
        answers: dict[str, list] = {}
        cur = conn.cursor()
        for stmt in statements(doc_block("requests")):
            for placeholder, value in values.items():
                stmt = stmt.replace(placeholder, value)
            assert not re.search(r"<[a-z ]+>", stmt), f"unfilled placeholder in {stmt!r}"
            cur.execute(stmt)
            body = code(stmt).lower()
            if body.startswith("select public.create_organization"):
                values["<organization id>"] = str(cur.fetchone()[0])
            elif body.startswith("select id from tenancy.organizations"):
                answers["scoped"] = [(str(r[0]), one(conn, "select current_user")[0]) for r in cur.fetchall()]
            elif body.startswith("select count(*) from tenancy.organizations"):
                answers["service"] = [(cur.fetchone()[0], one(conn, "select current_user")[0])]
        assert one(conn, "select current_user, coalesce(current_setting('request.jwt.claims', true), '')") == (BACKEND, "")
    org = values["<organization id>"]
    with psycopg.connect(roles.admin, autocommit=True) as admin:
        assert one(admin, "select role_key from tenancy.memberships where organization_id = %s and user_id = %s",
                   (org, user)) == ("tenant_owner",)
        total = one(admin, "select count(*) from tenancy.organizations")[0]
        assert total >= 2  # the user's personal organization and Acme, at least
    assert answers["scoped"] == [(org, "organization_scoped")]  # the user holds two; the scope shows one
    assert answers["service"] == [(total, "service_role")]


def test_client_blocks_as_the_backend(roles: Roles) -> None:
    run = uuid.uuid4().hex[:8]
    with psycopg.connect(roles.admin, autocommit=True) as admin:
        total = lambda: one(admin, "select count(*) from tenancy.organizations")[0]  # noqa: E731
        with client.connect(roles.backend) as conn:
            alice = client.sign_up(conn, f"alice-{run}@example.com")
            bob = client.sign_up(conn, f"bob-{run}@example.com")
            with client.as_user(conn, alice):
                assert one(conn, "select current_user, auth.uid()::text") == ("authenticated", alice)
                org = str(one(conn, "select public.create_organization(p_name => %s, p_slug => %s)",
                              (f"Acme {run}", f"acme-{run}"))[0])
            personal = str(one(admin, "select o.id from tenancy.organizations o join tenancy.memberships m "
                                      "on m.organization_id = o.id where o.is_personal and m.user_id = %s", (alice,))[0])
            read = "select id::text from tenancy.organizations order by 1"
            with client.as_user(conn, alice):
                assert {r[0] for r in conn.execute(read)} == {org, personal}
            with client.as_user(conn, alice, organization_id=org):
                assert one(conn, "select current_user")[0] == "organization_scoped"
                assert [r[0] for r in conn.execute(read)] == [org]
            with client.as_service(conn):
                assert one(conn, "select current_user")[0] == "service_role"
                assert one(conn, "select count(*) from tenancy.organizations")[0] == total()
            with client.as_anon(conn):
                assert one(conn, "select current_user")[0] == "anon"
                assert one(conn, "select count(*) from catalog.plans")[0] > 0  # the pricing page
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute("select count(*) from tenancy.organizations")
            # Negative controls: the same reads for another user find nothing of Alice's.
            with client.as_user(conn, bob):
                assert conn.execute("select id from tenancy.organizations where id = %s", (org,)).fetchall() == []
                assert one(conn, "select public.has_permission(p_organization_id => %s, p_permission => 'billing.view')",
                           (org,)) == (False,)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                with client.as_user(conn, bob, organization_id=org):
                    pass
            with pytest.raises(psycopg.errors.InsufficientPrivilege):  # a user may not do the service role's work
                with client.as_user(conn, alice):
                    conn.execute("select public.renew_subscriptions()")
            # Every block ended with its transaction, refusals included.
            assert one(conn, "select current_user, coalesce(current_setting('request.jwt.claims', true), '')") == (BACKEND, "")
            with conn.transaction():  # inside an open transaction the switch would outlive the block
                with pytest.raises(ValueError):
                    with client.as_user(conn, alice):
                        pass
        with psycopg.connect(roles.backend) as conn:  # not autocommit
            with pytest.raises(ValueError):
                with client.as_service(conn):
                    pass


def test_a_login_role_without_organization_scoped_cannot_make_scoped_requests(roles: Roles) -> None:
    """Why the page grants organization_scoped to the login roles: scope_request's
    switch is checked against the login role, not against authenticated."""
    with psycopg.connect(roles.admin, autocommit=True) as admin:
        admin.execute(sql.SQL("revoke organization_scoped from {}").format(sql.Identifier(BACKEND)))
        user = client.sign_up(admin, f"carol-{uuid.uuid4().hex[:8]}@example.com")
        org = str(one(admin, "select organization_id from tenancy.memberships where user_id = %s", (user,))[0])
    with client.connect(roles.backend) as conn:
        with client.as_user(conn, user):  # unscoped requests still work
            assert one(conn, "select count(*) from tenancy.organizations where id = %s", (org,)) == (1,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="organization_scoped"):
            with client.as_user(conn, user, organization_id=org):
                pass


# --- PostgREST, as it runs each request ---------------------------------------------

def postgrest_conf() -> dict[str, str]:
    conf = {}
    for line in doc_block("postgrest.conf").splitlines():
        m = re.match(r'^([\w.-]+)\s*=\s*"(.*)"\s*$', line)
        if m:
            conf[m.group(1)] = m.group(2)
        elif m := re.match(r"^([\w.-]+)\s*=\s*(\S+)\s*$", line):
            conf[m.group(1)] = m.group(2)
    return conf


def postgrest_request(conn: psycopg.Connection, conf: dict[str, str], role: str, claims: dict, headers: dict,
                      query: str, params: tuple = ()) -> list[tuple]:
    """What PostgREST 12 runs for one request (from its statement log): the
    settings in one statement, the pre-request, then the query."""
    schema = conf["db-schemas"].split(",")[0].strip()
    with conn.transaction():
        conn.execute("select set_config('search_path', %s, true), set_config('role', %s, true), "
                     "set_config('request.jwt.claims', %s, true), set_config('request.method', %s, true), "
                     "set_config('request.path', %s, true), set_config('request.headers', %s, true), "
                     "set_config('request.cookies', %s, true)",
                     (f'"{schema}", "public"', role, json.dumps(claims), "POST", "/rpc/x",
                      json.dumps({k.lower(): v for k, v in headers.items()}), "{}"))
        conn.execute(sql.SQL("select {}()").format(sql.SQL(".").join(map(sql.Identifier, conf["db-pre-request"].split(".")))))
        return conn.execute(query, params).fetchall()


def test_postgrest_requests_as_the_authenticator(roles: Roles) -> None:
    conf = postgrest_conf()
    assert conninfo_to_dict(conf["db-uri"])["user"] == AUTHENTICATOR
    assert conf["db-anon-role"] == "anon" and conf["db-pre-request"] == "public.scope_request"
    assert conf["db-schemas"] == "public" and len(conf["jwt-secret"]) >= 32
    with psycopg.connect(roles.admin, autocommit=True) as admin:
        alice = client.sign_up(admin, f"alice-{uuid.uuid4().hex[:8]}@example.com")
        personal = str(one(admin, "select organization_id from tenancy.memberships where user_id = %s", (alice,))[0])
        with client.as_user(admin, alice):
            org = str(one(admin, "select public.create_organization(p_name => 'Acme', p_slug => %s)",
                          (f"acme-{uuid.uuid4().hex[:8]}",))[0])
    user = {"sub": alice, "role": "authenticated", "aud": "authenticated"}
    can = "select public.has_permission(p_organization_id => %s, p_permission => 'billing.view')"
    with psycopg.connect(roles.authenticator, autocommit=True) as conn:
        req = lambda role, claims, query, params=(), headers={}: postgrest_request(  # noqa: E731
            conn, conf, role, claims, headers, query, params)
        assert req("anon", {"role": "anon"}, "select current_user, count(*) from catalog.plans")[0][0] == "anon"
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            req("anon", {"role": "anon"}, "select public.renew_subscriptions()")
        assert req("authenticated", user, can, (org,)) == [(True,)]
        assert req("authenticated", user, "select current_user", headers={"X-Organization-Id": org}) == [("organization_scoped",)]
        assert req("authenticated", user, can, (org,), {"X-Organization-Id": personal}) == [(False,)]
        assert req("authenticated", {**user, "organization_id": org}, can, (org,)) == [(True,)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # an organization the user is not a member of
            req("authenticated", user, can, (org,), {"X-Organization-Id": str(uuid.uuid4())})
        assert req("service_role", {"role": "service_role"}, "select current_user, public.renew_subscriptions() >= 0") == [
            ("service_role", True)]
        # A staff token of a user without a platform grant: the switch works, and reads nothing
        # of what is there (every organization has a subscription).
        assert req("service_role", {"role": "service_role"}, "select count(*) from billing.subscriptions")[0][0] >= 2
        assert req("platform_staff", {"sub": alice, "role": "platform_staff"},
                   "select current_user, count(*) from billing.subscriptions") == [("platform_staff", 0)]
        assert one(conn, "select current_user")[0] == AUTHENTICATOR


# --- tokens ---------------------------------------------------------------------------

def load_mint(tmp_path: Path) -> tuple[Path, dict]:
    path = tmp_path / "mint.py"
    path.write_text(doc_block("mint"))
    namespace: dict = {"__name__": "mint"}
    exec(compile(path.read_text(), str(path), "exec"), namespace)  # noqa: S102 - the page's own snippet
    return path, namespace


def decode(token: str, secret: str) -> dict:
    header, payload, signature = token.split(".")
    expected = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)) == expected, "bad signature"
    assert json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))) == {"alg": "HS256", "typ": "JWT"}
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_the_pages_token_minter(tmp_path: Path) -> None:
    path, mint = load_mint(tmp_path)
    # jwt.io's example token (HS256, secret "your-256-bit-secret"): what every JWT library makes.
    assert mint["mint_jwt"]({"sub": "1234567890", "name": "John Doe", "iat": 1516239022}, "your-256-bit-secret") == (
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ."
        "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")
    secret = postgrest_conf()["jwt-secret"]
    user, org = str(uuid.uuid4()), str(uuid.uuid4())
    env = {**os.environ, "JWT_SECRET": secret}
    minted = {}
    for args in (["anon"], ["service"], ["user", user], ["user", user, org], ["staff", user]):
        done = subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True, env=env, timeout=30)
        assert done.returncode == 0, done.stderr
        minted[" ".join(args[:1] + (["scoped"] if len(args) == 3 else []))] = decode(done.stdout.strip(), secret)
    assert {k: v["role"] for k, v in minted.items()} == {
        "anon": "anon", "service": "service_role", "user": "authenticated", "user scoped": "authenticated",
        "staff": "platform_staff"}
    assert minted["user"]["sub"] == user and "organization_id" not in minted["user"]
    assert minted["user scoped"]["organization_id"] == org
    assert all(v["exp"] > v["iat"] for v in minted.values())
    assert minted["staff"]["exp"] - minted["staff"]["iat"] <= 900
    # Without arguments: the usage, and a failure.
    done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, env=env, timeout=30)
    assert done.returncode != 0 and "mint.py anon" in done.stderr


def test_every_role_a_token_names_is_one_the_authenticator_may_become(roles: Roles, tmp_path: Path) -> None:
    _, mint = load_mint(tmp_path)
    named = {mint["claims_for"](*args)["role"] for args in (["anon"], ["service"], ["user", "u"], ["staff", "u"])}
    with psycopg.connect(roles.authenticator, autocommit=True) as conn:
        for role in named | {"organization_scoped"}:
            with conn.transaction():
                conn.execute("select set_config('role', %s, true)", (role,))
                assert one(conn, "select current_user")[0] == role


# --- the examples, as the back end ------------------------------------------------------

def test_every_python_example_runs_as_the_backend(roles: Roles) -> None:
    from test_examples import CHECKS

    done = subprocess.run([sys.executable, str(RUN_ALL), "--dsn", roles.backend, "--json"], capture_output=True,
                          text=True, timeout=600)
    results = [json.loads(line) for line in done.stdout.splitlines()]
    failed = {r["example"]: r["error"] for r in results if not r["ok"]}
    assert done.returncode == 0 and not failed, f"{failed}\n{done.stderr}"
    assert {r["example"] for r in results} == set(CHECKS)
    with psycopg.connect(roles.admin, autocommit=True) as conn:
        for r in results:
            CHECKS[r["example"]](conn, r["summary"])
