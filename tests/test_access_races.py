"""Who may read what stays exact under concurrency: two sessions change
memberships, roles' permissions and an organization's status at the same
time, in every pair and order, under READ COMMITTED and REPEATABLE READ;
afterwards what the RLS helpers answer equals the live join of
memberships, organizations and role permissions (no grant missing, none
extra).

A scenario: organization O; member M holds role A (carrying race.read and
race.write), member M2 holds role B (carrying nothing), user M3 is not a
member. Session 1 makes one change and keeps its transaction open; session
2 makes another (it may wait for session 1's locks); then both commit, in
either order where neither waits. A transaction the server refuses
(serialization failure, deadlock) rolls back: that is the server's answer,
not an error of the access model."""

from __future__ import annotations

import itertools
import json
from collections import Counter
import threading
import time

import psycopg
import pytest

PERMISSIONS = ["race.read", "race.write", "race.view"]

# Each change: SQL run by the session, with the scenario's names filled in.
CHANGES = {
    "demote": "update tenancy.memberships set role_key = '{b}' where organization_id = '{o}' and user_id = '{m}'",
    "promote": "update tenancy.memberships set role_key = '{a}' where organization_id = '{o}' and user_id = '{m2}'",
    "join": "insert into tenancy.memberships (organization_id, user_id, role_key) values ('{o}', '{m3}', '{a}')",
    "remove": "delete from tenancy.memberships where organization_id = '{o}' and user_id = '{m}'",
    "suspend_member": "update tenancy.memberships set status = 'suspended' where organization_id = '{o}' and user_id = '{m}'",
    "suspend_org": "update tenancy.organizations set status = 'suspended' where id = '{o}'",
    "grant": "insert into iam.role_permissions (role_key, role_is_system, permission_key, permission_is_platform) "
             "values ('{a}', false, 'race.view', false)",
    "grant_b": "insert into iam.role_permissions (role_key, role_is_system, permission_key, permission_is_platform) "
               "values ('{b}', false, 'race.view', false)",
    "revoke": "delete from iam.role_permissions where role_key = '{a}' and permission_key = 'race.write'",
    "retarget": "update iam.role_permissions set permission_key = 'race.view' where role_key = '{a}' and permission_key = 'race.read'",
}

LIVE = """
select ms.user_id::text, rp.permission_key
  from tenancy.memberships ms
  join tenancy.organizations o on o.id = ms.organization_id
  join iam.role_permissions rp on rp.role_key = ms.role_key and not rp.permission_is_platform
 where ms.status = 'active' and ms.organization_id = %(o)s
   and (o.status = 'active' or (o.status = 'suspended' and rp.permission_key ~ '[.](read|view)$'))
"""


def setup(dsn: str, n: int) -> dict[str, str]:
    """A fresh organization, three users and two roles for scenario n."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        def user(tag: str) -> str:
            return str(conn.execute("insert into auth.users (email) values (%s) returning id",
                                    (f"race-{tag}-{n}@race.test",)).fetchone()[0])
        conn.execute("insert into iam.permissions (key, is_platform) select unnest(%s::text[]), false on conflict do nothing",
                     (PERMISSIONS,))
        owner = user("owner")
        o = str(conn.execute("select id from tenancy.organizations where personal_owner_id = %s", (owner,)).fetchone()[0])
        names = {"o": o, "m": user("m"), "m2": user("m2"), "m3": user("m3"), "a": f"race_a_{n}", "b": f"race_b_{n}"}
        for role in (names["a"], names["b"]):
            conn.execute("insert into iam.roles (key, name, is_system) values (%s, %s, false)", (role, role))
        for permission in ("race.read", "race.write"):
            conn.execute("insert into iam.role_permissions (role_key, role_is_system, permission_key, permission_is_platform) "
                         "values (%s, false, %s, false)", (names["a"], permission))
        conn.execute("insert into tenancy.memberships (organization_id, user_id, role_key) values (%s, %s, %s), (%s, %s, %s)",
                     (o, names["m"], names["a"], o, names["m2"], names["b"]))
    return names


def disagreements(dsn: str, names: dict[str, str]) -> list[str]:
    """Where the RLS helpers and the live join differ, for the scenario's
    users and permissions in its organization: empty when exact."""
    users = [names["m"], names["m2"], names["m3"]]
    found = []
    with psycopg.connect(dsn) as conn:
        live = {row for row in conn.execute(LIVE, names).fetchall() if row[0] in users and row[1] in PERMISSIONS}
        for user, permission in itertools.product(users, PERMISSIONS):
            expected = (user, permission) in live
            held = conn.execute("select private.user_has_permission(%s, %s, %s)", (names["o"], user, permission)).fetchone()[0]
            conn.execute("select set_config('request.jwt.claims', %s, true), set_config('role', 'authenticated', true)",
                         (json.dumps({"sub": user, "role": "authenticated"}),))
            listed = names["o"] in conn.execute("select private.org_ids_with_permission(%s)::text[]", (permission,)).fetchone()[0]
            conn.execute("reset role")
            for how, got in (("user_has_permission", held), ("org_ids_with_permission", listed)):
                if got != expected:
                    who = next(k for k in ("m", "m2", "m3") if names[k] == user)
                    found.append(f"{how}: {who} {'holds' if got else 'lacks'} {permission}, the live join says "
                                 f"{'holds' if expected else 'lacks'}")
        conn.rollback()
    return found


def waiting(conn: psycopg.Connection, pid: int) -> bool:
    return conn.execute("select wait_event_type = 'Lock' from pg_stat_activity where pid = %s", (pid,)).fetchone()[0] or False


def race(dsn: str, names: dict[str, str], first: str, second: str, isolation: str, second_commits_first: bool) -> str:
    """Run the two changes concurrently; return how it went (for messages)."""
    outcome: dict[str, object] = {}
    with psycopg.connect(dsn) as a, psycopg.connect(dsn) as b, psycopg.connect(dsn, autocommit=True) as watch:
        for conn in (a, b):
            conn.execute(f"set transaction isolation level {isolation}")
        a.execute(CHANGES[first].format(**names))
        b_pid = b.info.backend_pid

        def run_second() -> None:
            try:
                b.execute(CHANGES[second].format(**names))
                outcome["second"] = "done"
            except psycopg.Error as exc:
                outcome["second"] = exc

        thread = threading.Thread(target=run_second)
        thread.start()
        deadline = time.monotonic() + 10
        while thread.is_alive() and not waiting(watch, b_pid) and time.monotonic() < deadline:
            time.sleep(0.002)
        blocked = thread.is_alive()
        if blocked or not second_commits_first:
            a.commit()
            thread.join(timeout=30)
            assert not thread.is_alive(), f"{second} still waits after {first} committed"
            b.rollback() if isinstance(outcome["second"], psycopg.Error) else b.commit()
        else:
            thread.join()
            b.rollback() if isinstance(outcome["second"], psycopg.Error) else b.commit()
            a.commit()
    second_result = outcome["second"]
    how = "waited" if blocked else "ran"
    return f"{second} {how}, {'refused: ' + type(second_result).__name__ if isinstance(second_result, psycopg.Error) else 'committed'}"


# What the server may answer the second session (a conflict it detects);
# anything else is a broken change, not a race.
CONFLICTS = {"SerializationFailure", "DeadlockDetected", "UniqueViolation", "ForeignKeyViolation"}


def scenarios() -> list[tuple[str, str, bool]]:
    return [(x, y, late) for x, y in itertools.permutations(CHANGES, 2) for late in (False, True)]


@pytest.mark.parametrize("isolation", ["read committed", "repeatable read"])
def test_concurrent_changes_leave_access_exact(dsn: str, isolation: str) -> None:
    wrong, outcomes = [], Counter()
    for n, (first, second, second_commits_first) in enumerate(scenarios()):
        names = setup(dsn, n)
        how = race(dsn, names, first, second, isolation, second_commits_first)
        outcomes[how.split(" ", 1)[1]] += 1
        problems = disagreements(dsn, names)
        if problems:
            order = "second commits first" if second_commits_first else "first commits first"
            wrong.append(f"{first} then {second} ({order}; {how}): {'; '.join(problems)}")
    assert not wrong, f"{len(wrong)} of {len(scenarios())} scenarios disagree:\n" + "\n".join(wrong)
    refused = {key.split(": ")[1] for key in outcomes if "refused" in key}
    assert refused <= CONFLICTS, outcomes
    # Most pairs do not conflict at all: both commit, and the check above
    # compared real concurrent changes.
    committed = sum(v for k, v in outcomes.items() if k.endswith("committed"))
    assert committed >= len(scenarios()) * 2 // 3, outcomes


def test_the_race_check_sees_a_stale_derived_row(dsn: str) -> None:
    """Negative control: with the membership trigger that keeps the derived
    access disabled, a demotion leaves the member's old permissions, and
    the same check reports it."""
    names = setup(dsn, 999)
    assert disagreements(dsn, names) == []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("alter table tenancy.memberships disable trigger keep_tenant_access")
        conn.execute(CHANGES["demote"].format(**names))
        conn.execute("alter table tenancy.memberships enable trigger keep_tenant_access")
    found = disagreements(dsn, names)
    assert "user_has_permission: m holds race.write, the live join says lacks" in found, found
    assert "org_ids_with_permission: m holds race.read, the live join says lacks" in found, found


def test_reapplying_every_repeatable_rebuilds_no_derived_row(dsn: str) -> None:
    """An upgrade whose function files all changed re-applies them; the
    derived access rows are left as they are (not deleted and written
    again: a big customer's upgrade would hold a lock for minutes)."""
    from tenantdb.engine import Engine
    from tenantdb.render import Renderer, Target

    names = setup(dsn, 1000)
    with psycopg.connect(dsn, autocommit=True) as conn:
        before = conn.execute("select organization_id, user_id, xmin::text from private.tenant_access order by 1, 2").fetchall()
        assert any(str(o) == names["o"] for o, _, _ in before)
        conn.execute("update tenantdb.repeatables set checksum = 'changed'")
    assert Engine(dsn, Renderer(Target()), echo=lambda _line: None).migrate() > 0
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select count(*) from tenantdb.repeatables where checksum = 'changed'").fetchone()[0] == 0
        after = conn.execute("select organization_id, user_id, xmin::text from private.tenant_access order by 1, 2").fetchall()
    assert after == before


def test_rebuild_derives_what_a_bulk_load_left_out_and_refuses_an_old_snapshot(dsn: str) -> None:
    """Memberships written with triggers off (a bulk load) have no access
    row until private.rebuild_tenant_access(); it refuses to run on a
    snapshot older than its lock (25000), changing nothing."""
    names = setup(dsn, 2000)
    with psycopg.connect(dsn, autocommit=True) as conn:
        with conn.transaction():
            conn.execute("set local session_replication_role = replica")
            conn.execute("insert into tenancy.memberships (organization_id, user_id, role_key) values (%s, %s, %s)",
                         (names["o"], names["m3"], names["a"]))
        assert "m3 lacks race.read, the live join says holds" in " ".join(disagreements(dsn, names))
        with pytest.raises(psycopg.errors.InvalidTransactionState, match="must run under READ COMMITTED"):
            with conn.transaction():
                conn.execute("set transaction isolation level repeatable read")
                conn.execute("select private.rebuild_tenant_access()")
        assert disagreements(dsn, names) != []
        rows = conn.execute("select private.rebuild_tenant_access()").fetchone()[0]
        assert rows == conn.execute("select count(*) from tenancy.memberships where status = 'active'").fetchone()[0]
    assert disagreements(dsn, names) == []
