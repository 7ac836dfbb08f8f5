"""Property tests against the real database: signup never fails on an odd
email, and the user-name check agrees with the documented rule."""

from __future__ import annotations

import json
import re

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

USERNAME_RULE = re.compile(r"[A-Za-z][A-Za-z0-9_]{2,29}")
# The documented reserved names (docs/concepts-tenancy.md; migrations/0002_identity.sql).
RESERVED = {"admin", "administrator", "root", "system", "support", "help", "api", "www", "mail", "billing",
            "security", "staff", "owner", "superadmin", "platform", "console", "dashboard", "settings", "login",
            "logout", "signup", "null", "anonymous", "tenantdb", "postgres", "service_role", "authenticated", "anon"}
TAKEN = "Taken_Name"
names = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=35),
    st.sampled_from(sorted(RESERVED)).map(str.upper),
    st.sampled_from([TAKEN, TAKEN.lower(), TAKEN.upper()]),
).filter(lambda s: s.strip())
local_parts = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="@\x00"), min_size=0, max_size=80)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(local=local_parts, full_name=st.one_of(st.none(), st.text(max_size=400)))
def test_signup_provisions_any_email(dsn: str, local: str, full_name: str | None) -> None:
    meta = {} if full_name is None else {"full_name": full_name.replace("\x00", "")}
    with psycopg.connect(dsn) as conn:
        uid = conn.execute("insert into auth.users (email, raw_user_meta_data) values (%s, %s) returning id",
                           (f"{local}@example.test", json.dumps(meta))).fetchone()[0]
        slug = conn.execute("select slug from tenancy.organizations where personal_owner_id = %s", (uid,)).fetchone()[0]
        assert re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", slug)
        conn.rollback()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=names)
def test_username_check_follows_the_documented_rule(dsn: str, name: str) -> None:
    with psycopg.connect(dsn) as conn:
        other = conn.execute("insert into auth.users (email) values ('other@example.test') returning id").fetchone()[0]
        conn.execute("update identity.users set username = %s where id = %s", (TAKEN, other))
        uid = conn.execute("insert into auth.users (email) values ('prop@example.test') returning id").fetchone()[0]
        reserved = name.lower() in RESERVED
        taken = name.lower() == TAKEN.lower()
        conn.execute("select set_config('request.jwt.claims', %s, true), set_config('role', 'authenticated', true)",
                     (json.dumps({"sub": str(uid), "role": "authenticated"}),))
        available = conn.execute("select public.check_username_available(%s)", (name,)).fetchone()[0]
        assert available == (bool(USERNAME_RULE.fullmatch(name)) and not reserved and not taken)
        conn.rollback()


# -- private.tenant_access agrees with its sources ------------------------
# Any sequence of membership, role-permission and organization-status
# changes leaves the derived access table equal to the live join it
# replaces (what the RLS helpers read is never stale, nor extra). The
# oracle states the status rule of docs/concepts-tenancy.md on its own.

LIVE_ACCESS = """
select ms.user_id::text, rp.permission_key, ms.organization_id::text
  from tenancy.memberships ms
  join tenancy.organizations o on o.id = ms.organization_id
  join iam.role_permissions rp on rp.role_key = ms.role_key and not rp.permission_is_platform
 where ms.status = 'active'
   and (o.status = 'active' or (o.status = 'suspended' and rp.permission_key ~ '[.](read|view)$'))
"""
# What the helper answers for every (user, permission, organization) the
# scenario could produce.
DERIVED_ACCESS = """
select u.id::text, p.key, o.id::text
  from auth.users u cross join iam.permissions p cross join tenancy.organizations o
 where not p.is_platform and private.user_has_permission(o.id, u.id, p.key)
"""
ROLES = ["tenant_member", "tenant_admin", "tenant_guest", "prop_role"]
PERMISSIONS = ["tenant.read", "billing.view", "usage.record", "member.invite"]
operations = st.lists(st.one_of(
    st.tuples(st.just("join"), st.integers(0, 2), st.integers(0, 2), st.sampled_from(ROLES)),
    st.tuples(st.just("role"), st.integers(0, 2), st.integers(0, 2), st.sampled_from(ROLES)),
    st.tuples(st.just("membership_status"), st.integers(0, 2), st.integers(0, 2), st.sampled_from(["active", "suspended"])),
    st.tuples(st.just("leave"), st.integers(0, 2), st.integers(0, 2), st.just("")),
    st.tuples(st.just("grant"), st.just(0), st.just(0), st.sampled_from(PERMISSIONS)),
    st.tuples(st.just("revoke"), st.just(0), st.just(0), st.sampled_from(PERMISSIONS)),
    st.tuples(st.just("org_status"), st.integers(0, 2), st.just(0), st.sampled_from(["active", "suspended", "deleted"])),
), min_size=1, max_size=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_tenant_access_equals_the_live_join(dsn: str, ops: list[tuple]) -> None:
    with psycopg.connect(dsn) as conn:
        owners = [conn.execute("insert into auth.users (email) values (%s) returning id", (f"owner{i}@p.test",)).fetchone()[0]
                  for i in range(3)]
        orgs = [conn.execute("select id from tenancy.organizations where personal_owner_id = %s", (o,)).fetchone()[0] for o in owners]
        users = [conn.execute("insert into auth.users (email) values (%s) returning id", (f"user{i}@p.test",)).fetchone()[0]
                 for i in range(3)]
        conn.execute("insert into iam.roles (key, name, is_system) values ('prop_role', 'Property role', false)")
        for op, org, user, arg in ops:
            o, u = orgs[org], users[user]
            if op == "join":
                conn.execute("insert into tenancy.memberships (organization_id, user_id, role_key) values (%s, %s, %s) "
                             "on conflict do nothing", (o, u, arg))
            elif op == "role":
                conn.execute("update tenancy.memberships set role_key = %s where organization_id = %s and user_id = %s", (arg, o, u))
            elif op == "membership_status":
                conn.execute("update tenancy.memberships set status = %s where organization_id = %s and user_id = %s", (arg, o, u))
            elif op == "leave":
                conn.execute("delete from tenancy.memberships where organization_id = %s and user_id = %s", (o, u))
            elif op == "grant":
                conn.execute("insert into iam.role_permissions (role_key, role_is_system, permission_key, permission_is_platform) "
                             "values ('prop_role', false, %s, false) on conflict do nothing", (arg,))
            elif op == "revoke":
                conn.execute("delete from iam.role_permissions where role_key = 'prop_role' and permission_key = %s", (arg,))
            else:
                conn.execute("update tenancy.organizations set status = %s where id = %s", (arg, o))
            live = set(conn.execute(LIVE_ACCESS).fetchall())
            derived = set(conn.execute(DERIVED_ACCESS).fetchall())
            assert derived == live, (op, org, user, arg, derived ^ live)
        conn.rollback()
