"""Seats: the live plan's max_seats decides at invitation and at joining.

A paid seat is an active membership of type member (guests are free).
On a plan without seat overage, an invitation or a join past the limit is
refused with 54000 naming the plan, its limit and the count, and writes
nothing; on a plan with seat overage the join is admitted and the period's
highest seat count is what the overage is billed on. Joins of one
organization are counted one after the other: eight parallel joins with one
seat left admit exactly one. Members' requests are refused; the back end
(service_role, a DBA's session) may pass the limit, and its seats are
counted and recorded.
"""

from __future__ import annotations

import json

import psycopg
import pytest

from test_concurrency import SESSIONS, in_parallel

TEAM_PLAN = "test_team3"  # 3 paid seats, no seat overage


def user(conn: psycopg.Connection, email: str) -> str:
    return str(conn.execute("insert into auth.users (email) values (%s) returning id", (email,)).fetchone()[0])


def act_as(conn: psycopg.Connection, uid: str | None, role: str = "authenticated") -> None:
    claims = json.dumps({"sub": uid, "role": role} if uid else {"role": role})
    conn.execute("select set_config('request.jwt.claims', %s, true), set_config('role', %s, true)", (claims, role))


def business(conn: psycopg.Connection, owner: str, slug: str) -> str:
    with conn.transaction():
        act_as(conn, owner)
        return str(conn.execute("select public.create_organization(%s, %s)", (slug, slug)).fetchone()[0])


def on_plan(conn: psycopg.Connection, org: str, plan: str) -> None:
    conn.execute("update billing.subscriptions set plan_key = %s where organization_id = %s and status <> 'canceled'", (plan, org))


def invite(conn: psycopg.Connection, inviter: str, org: str, email: str) -> str:
    with conn.transaction():
        act_as(conn, inviter)
        return conn.execute("select token from public.invite_member(%s, %s)", (org, email)).fetchone()[0]


def accept(conn: psycopg.Connection, uid: str, token: str) -> None:
    with conn.transaction():
        act_as(conn, uid)
        conn.execute("select public.accept_invitation(%s)", (token,))


def seats(conn: psycopg.Connection, org: str) -> int:
    return conn.execute("select count(*) from tenancy.memberships where organization_id = %s and status = 'active' "
                        "and member_type = 'member'", (org,)).fetchone()[0]


def peak(conn: psycopg.Connection, org: str) -> int | None:
    row = conn.execute("select peak from usage.seat_peaks where organization_id = %s and period_start = "
                       "(select p.start_date from private.billing_period(%s, now()) p)", (org, org)).fetchone()
    return row[0] if row else None


@pytest.fixture
def conn(dsn: str):
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("insert into catalog.plans (key, name, price_minor, currency, billing_interval, rank) "
                  "values (%s, 'Team of three', 1500, 'USD', 'month', 5)", (TEAM_PLAN,))
        c.execute("insert into catalog.plan_features (plan_key, feature_key, feature_kind, limit_value) "
                  "values (%s, 'max_seats', 'limit', 3)", (TEAM_PLAN,))
        yield c


def test_a_free_organization_refuses_a_second_seat_at_invitation(conn: psycopg.Connection) -> None:
    """The issue's check: free allows one seat; the owner holds it, so
    inviting anyone is refused and no invitation is written."""
    owner = user(conn, "owner@seats.test")
    org = business(conn, owner, "free-seats")
    with pytest.raises(psycopg.Error) as refused:
        invite(conn, owner, org, "second@seats.test")
    assert refused.value.sqlstate == "54000"
    assert refused.value.diag.message_primary == (
        f"limit max_seats reached: plan free allows 1 paid seat(s) and bills no overage; organization {org} would have 2")
    assert conn.execute("select count(*) from tenancy.invitations where organization_id = %s", (org,)).fetchone()[0] == 0
    assert seats(conn, org) == 1


def test_the_back_end_may_pass_the_limit_members_may_not(conn: psycopg.Connection) -> None:
    """The back end (service_role) adds a second member to a free
    organization: let through, counted and recorded (the period's peak is
    2). The owner's invitation is then refused for the third seat; a guest
    (free) the back end adds takes no seat."""
    owner = user(conn, "owner2@seats.test")
    org = business(conn, owner, "free-three")
    second, guest = (user(conn, f"{n}@seats.test") for n in ("second2", "guest2"))
    with conn.transaction():
        act_as(conn, None, "service_role")
        conn.execute("insert into tenancy.memberships (organization_id, user_id, role_key) values (%s, %s, 'tenant_member')",
                     (org, second))
    assert seats(conn, org) == 2
    assert peak(conn, org) == 2
    with pytest.raises(psycopg.Error) as refused:
        invite(conn, owner, org, "third2@seats.test")
    assert refused.value.sqlstate == "54000"
    assert refused.value.diag.message_primary.endswith(f"organization {org} would have 3")
    with conn.transaction():
        act_as(conn, None, "service_role")
        conn.execute("insert into tenancy.memberships (organization_id, user_id, role_key, member_type) "
                     "values (%s, %s, 'tenant_member', 'guest')", (org, guest))
    assert seats(conn, org) == 2
    assert peak(conn, org) == 2


def test_an_invitation_accepted_after_the_seats_ran_out_is_refused(conn: psycopg.Connection) -> None:
    """Invited while a seat was free; the seat is taken (by the back end)
    before the invitee accepts: the join is refused, nothing is written,
    and the invitation stays pending."""
    owner = user(conn, "owner3@seats.test")
    org = business(conn, owner, "late-accept")
    on_plan(conn, org, TEAM_PLAN)
    conn.execute("insert into tenancy.memberships (organization_id, user_id, role_key) values (%s, %s, 'tenant_member')",
                 (org, user(conn, "second3@seats.test")))
    late = user(conn, "late3@seats.test")
    token = invite(conn, owner, org, "late3@seats.test")
    conn.execute("insert into tenancy.memberships (organization_id, user_id, role_key) values (%s, %s, 'tenant_member')",
                 (org, user(conn, "third3@seats.test")))
    with pytest.raises(psycopg.Error) as refused:
        accept(conn, late, token)
    assert refused.value.sqlstate == "54000"
    assert refused.value.diag.message_primary == (
        f"limit max_seats reached: plan {TEAM_PLAN} allows 3 paid seat(s) and bills no overage; organization {org} would have 4")
    assert seats(conn, org) == 3
    assert conn.execute("select accepted_at is null from tenancy.invitations where organization_id = %s and email = %s",
                        (org, "late3@seats.test")).fetchone()[0] is True


def test_eight_parallel_joins_with_one_seat_left_admit_exactly_one(conn: psycopg.Connection, dsn: str) -> None:
    """Eight invitations made while a seat was free, accepted at once, each
    through the role switch: one joins, seven are refused with 54000."""
    owner = user(conn, "owner4@seats.test")
    org = business(conn, owner, "race-seats")
    on_plan(conn, org, TEAM_PLAN)
    conn.execute("insert into tenancy.memberships (organization_id, user_id, role_key) values (%s, %s, 'tenant_member')",
                 (org, user(conn, "second4@seats.test")))
    assert seats(conn, org) == 2  # limit - 1
    joiners = [(user(conn, f"joiner{i}@seats.test"), f"joiner{i}@seats.test") for i in range(SESSIONS)]
    tokens = [invite(conn, owner, org, email) for _, email in joiners]

    def join(c: psycopg.Connection, i: int) -> str:
        accept(c, joiners[i][0], tokens[i])
        return "joined"

    results = in_parallel(dsn, join)
    assert results.count("joined") == 1, results
    refusals = [r for r in results if r != "joined"]
    assert all(isinstance(r, psycopg.Error) and r.sqlstate == "54000" for r in refusals), refusals
    assert len(refusals) == SESSIONS - 1
    assert seats(conn, org) == 3
    assert conn.execute("select count(*) from tenancy.invitations where organization_id = %s and accepted_at is not null",
                        (org,)).fetchone()[0] == 1
    assert peak(conn, org) == 3


def test_a_plan_with_seat_overage_admits_and_bills_the_periods_peak(conn: psycopg.Connection) -> None:
    """pro: 5 seats included, 1000 per seat over. A sixth member joins (no
    refusal), leaves again, and the period is still billed one seat over."""
    owner = user(conn, "owner5@seats.test")
    org = business(conn, owner, "overage-seats")
    on_plan(conn, org, "pro")
    members = [user(conn, f"p{i}@seats.test") for i in range(5)]
    for uid in members[:4]:
        conn.execute("insert into tenancy.memberships (organization_id, user_id, role_key) values (%s, %s, 'tenant_member')", (org, uid))
    token = invite(conn, owner, org, "p4@seats.test")  # the sixth seat: invited on a plan that bills overage
    accept(conn, members[4], token)
    assert seats(conn, org) == 6
    assert peak(conn, org) == 6
    access = conn.execute("select public.check_feature_access(%s, 'max_seats', %s)", (owner, org)).fetchone()[0]
    assert (access["limit"], access["used"], access["allowed"], access["overage_unit_price"]) == (5, 6, True, 1000)
    conn.execute("delete from tenancy.memberships where organization_id = %s and user_id = %s", (org, members[4]))
    assert seats(conn, org) == 5
    conn.execute("select public.record_organization_usage(%s)", (org,))
    fee = conn.execute("select units_over, unit_price_minor, amount_minor from usage.overage_fees "
                       "where organization_id = %s and feature_key = 'max_seats'", (org,)).fetchone()
    assert fee == (1, 1000, 1000)


def test_seat_peaks_are_readable_by_members_only(conn: psycopg.Connection) -> None:
    """The row the gate writes is tenant data: the organization's members
    read it; a member of another organization and anon do not."""
    owner = user(conn, "owner6@seats.test")
    org = business(conn, owner, "peaks-read")
    stranger = user(conn, "stranger6@seats.test")
    with conn.transaction():
        act_as(conn, owner)
        assert conn.execute("select peak from usage.seat_peaks where organization_id = %s", (org,)).fetchall() == [(1,)]
    with conn.transaction():
        act_as(conn, stranger)
        assert conn.execute("select count(*) from usage.seat_peaks where organization_id = %s", (org,)).fetchone()[0] == 0
    with pytest.raises(psycopg.Error) as refused, conn.transaction():
        act_as(conn, None, "anon")
        conn.execute("select count(*) from usage.seat_peaks")
    assert refused.value.sqlstate == "42501"


def test_an_ended_period_is_billed_on_its_peak_not_on_todays_members(conn: psycopg.Connection) -> None:
    """The period before this one peaked at 2 seats; five members join now.
    Summarized (invoiced) afterwards, the ended period bills its 2, the
    running one the 6 seats it has now."""
    owner = user(conn, "owner7@seats.test")
    org = business(conn, owner, "ended-peak")
    on_plan(conn, org, "pro")
    previous = conn.execute("select (p.start_date - interval '1 day')::date from private.billing_period(%s, now()) p", (org,)).fetchone()[0]
    previous = conn.execute("select p.start_date from private.billing_period(%s, %s::timestamptz) p", (org, previous)).fetchone()[0]
    conn.execute("insert into usage.seat_peaks (organization_id, period_start, peak) values (%s, %s, 2)", (org, previous))
    for i in range(5):
        conn.execute("insert into tenancy.memberships (organization_id, user_id, role_key) values (%s, %s, 'tenant_member')",
                     (org, user(conn, f"later{i}@seats.test")))
    assert seats(conn, org) == 6
    assert conn.execute("select private.seats_billed(%s, %s)", (org, previous)).fetchone()[0] == 2
    current = conn.execute("select p.start_date from private.billing_period(%s, now()) p", (org,)).fetchone()[0]
    assert conn.execute("select private.seats_billed(%s, %s)", (org, current)).fetchone()[0] == 6
