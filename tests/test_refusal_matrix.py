"""The refusal matrix, generated from the catalog like the isolation matrix.

Every function of the API schema is called by a member of another
organization (Bob) with arguments aimed at organization A and Alice, then
with each argument in turn replaced by NULL, an empty string, a 1 MB
string, a negative number or malformed JSON (as its type allows), and
once by an anonymous caller. Every call either succeeds or fails with a
SQLSTATE a client can act on (class 22 or 23, 42501, class 54 or 55,
P0001, P0002) — never an internal error or a type mistake inside the
function — and no call, succeeding or not, changes a row of organization
A's or of Alice's. A new API function is covered without editing this file.
"""

from __future__ import annotations

import json

import psycopg
from psycopg import sql

from test_isolation import domain_tables, world  # noqa: F401  (world is a fixture)

ACCEPTED = ("22", "23", "54", "55")
ACCEPTED_STATES = ("42501", "P0001", "P0002")
MEGABYTE = "x" * (1 << 20)

API_FUNCTIONS = """
select p.proname, p.oid::regprocedure::text, coalesce(p.proargnames[1:p.pronargs], '{}'),
       array(select format_type(t, null) from unnest(p.proargtypes) as t)
  from pg_proc p
 where p.pronamespace = 'public'::regnamespace
   and not exists (select from pg_depend d where d.objid = p.oid and d.deptype = 'e')
 order by 2
"""


def base_value(name: str, typ: str, ids: dict[str, str]) -> object:
    """An argument aimed at the victim: organization A, Alice, or a plain value."""
    if typ == "uuid":
        return ids["alice"] if ("user" in name or "owner" in name or name == "target_user") else ids["org_a"]
    if typ in ("integer", "bigint", "numeric"):
        return 1
    if typ == "boolean":
        return True
    if typ == "jsonb":
        return "{}"
    if typ == "timestamp with time zone":
        return "now"
    if typ == "date":
        return "today"
    if typ == "interval":
        return "1 day"
    if typ == "character":
        return "USD"
    return "x"


def variants(typ: str) -> list[object]:
    """The hostile values an argument of this type can take."""
    found: list[object] = [None, ""]
    if typ in ("text", "character varying", "character"):
        found.append(MEGABYTE)
    if typ in ("integer", "bigint", "numeric"):
        found.append(-1)
    if typ == "jsonb":
        found += ["{", json.dumps({"organization_id": "not-a-uuid"})]
    return found


def victim_checksum(conn: psycopg.Connection, tables: list) -> str:
    parts = [sql.SQL("select {}::text as t, md5(coalesce(string_agg(x::text, '|' order by x::text), '')) as h from {} x where {}")
             .format(sql.Literal(str(t)), t.ident, t.victim_filter) for t in tables]
    query = sql.SQL("select md5(string_agg(h, ',' order by t)) from ({}) s").format(sql.SQL(" union all ").join(parts))
    return conn.execute(query).fetchone()[0]


def call(conn: psycopg.Connection, regproc: str, types: list[str], args: list[object], claims: dict, role: str) -> str | None:
    """One call in its own savepoint; returns the SQLSTATE, or None on success."""
    conn.execute("savepoint call")
    try:
        conn.execute("select set_config('request.jwt.claims', %s, true), set_config('role', %s, true)", (json.dumps(claims), role))
        fn = regproc.split("(")[0]
        placeholders = sql.SQL(", ").join(sql.SQL("%s::{}").format(sql.SQL(t)) for t in types)
        conn.execute(sql.SQL("select * from {}({})").format(sql.SQL(fn), placeholders), args)
        conn.execute("reset role")
        return None
    except psycopg.Error as exc:
        return exc.sqlstate or "?????"


def test_every_api_function_refuses_cleanly_and_touches_nothing_of_the_victim(dsn: str, world: dict[str, str]) -> None:  # noqa: F811
    failures: list[str] = []
    calls = 0
    with psycopg.connect(dsn) as conn:
        tables = [t for t in domain_tables(conn, world) if t.schema != "audit"]
        before = victim_checksum(conn, tables)
        functions = conn.execute(API_FUNCTIONS).fetchall()
        assert len(functions) >= 40, [f[1] for f in functions]
        outsider = ({"sub": world["bob"], "role": "authenticated"}, "authenticated")
        anon = ({"role": "anon"}, "anon")
        for name, regproc, argnames, types in functions:
            base = [base_value(n or "", t, world) for n, t in zip(argnames or [""] * len(types), types)]
            attempts = [(outsider, base, "aimed at the victim"), (anon, base, "as anon")]
            for i, typ in enumerate(types):
                for value in variants(typ):
                    args = list(base)
                    args[i] = value
                    shown = "1 MB" if value == MEGABYTE else repr(value)
                    attempts.append((outsider, args, f"argument {i + 1} = {shown}"))
            for (claims, role), args, what in attempts:
                calls += 1
                state = call(conn, regproc, types, args, claims, role)
                if state is not None and not (state[:2] in ACCEPTED or state in ACCEPTED_STATES):
                    failures.append(f"{regproc} {what}: SQLSTATE {state}")
                if state is None:
                    after = victim_checksum(conn, tables)
                    if after != before:
                        failures.append(f"{regproc} {what}: succeeded and changed the victim's rows")
                conn.execute("rollback to savepoint call")
        conn.rollback()
    assert calls > 200
    assert not failures, "\n".join(failures)
