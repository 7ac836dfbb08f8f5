"""Property tests against the real database: signup never fails on an odd
email, and the user-name check agrees with the documented rule."""

from __future__ import annotations

import json
import re

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

USERNAME_RULE = re.compile(r"[A-Za-z][A-Za-z0-9_]{2,29}")
# The documented reserved names (README; migrations/0002_identity.sql).
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
