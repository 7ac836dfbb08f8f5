"""Property tests against the real database: signup never fails on an odd
email, and the user-name check agrees with the documented rule."""

from __future__ import annotations

import json
import re

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

USERNAME_RULE = re.compile(r"[A-Za-z][A-Za-z0-9_]{2,29}")
local_parts = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="@\x00"), min_size=0, max_size=80)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(local=local_parts)
def test_signup_provisions_any_email(dsn: str, local: str) -> None:
    with psycopg.connect(dsn) as conn:
        uid = conn.execute("insert into auth.users (email) values (%s) returning id", (f"{local}@example.test",)).fetchone()[0]
        slug = conn.execute("select slug from tenancy.organizations where personal_owner_id = %s", (uid,)).fetchone()[0]
        assert re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", slug)
        conn.rollback()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=35).filter(lambda s: s.strip()))
def test_username_check_follows_the_documented_rule(dsn: str, name: str) -> None:
    with psycopg.connect(dsn) as conn:
        uid = conn.execute("insert into auth.users (email) values ('prop@example.test') returning id").fetchone()[0]
        reserved = conn.execute("select exists (select from identity.reserved_usernames where name = lower(%s))", (name,)).fetchone()[0]
        conn.execute("select set_config('request.jwt.claims', %s, true), set_config('role', 'authenticated', true)",
                     (json.dumps({"sub": str(uid), "role": "authenticated"}),))
        available = conn.execute("select public.check_username_available(%s)", (name,)).fetchone()[0]
        assert available == (bool(USERNAME_RULE.fullmatch(name)) and not reserved)
        conn.rollback()
