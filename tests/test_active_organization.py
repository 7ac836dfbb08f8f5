"""A request that names its active organization (token claim
organization_id, or header X-Organization-Id) runs, after PostgREST's
pre-request function scope_request, as role organization_scoped: it sees
and writes that organization's rows only, a list page reads the tenant's
index in order, and a name it may not use is refused before anything runs.
All through PostgREST's role switch: set_config of role,
request.jwt.claims and request.headers, then the pre-request."""

from __future__ import annotations

import json

import psycopg
import pytest

PAGE = "select id from billing.invoices order by period_start desc limit 50"


def request(conn: psycopg.Connection, uid: str | None, claims: dict | None = None, headers: dict | None = None,
            role: str = "authenticated") -> None:
    """What PostgREST does before a request's statement: the role switch,
    the claims and headers, then the pre-request function."""
    token = {"role": role, **({"sub": uid} if uid else {}), **(claims or {})}
    conn.execute("select set_config('request.jwt.claims', %s, true), set_config('request.headers', %s, true), "
                 "set_config('role', %s, true)", (json.dumps(token), json.dumps(headers or {}), role))
    conn.execute("select public.scope_request()")


@pytest.fixture
def tenants(dsn: str) -> dict[str, str]:
    """Uma: her personal organization P and organization B (3,000 monthly
    invoices), a project in each; Olga: organization O, where Uma is no member."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        def user(email: str) -> str:
            return str(conn.execute("insert into auth.users (email) values (%s) returning id", (email,)).fetchone()[0])

        def created(uid: str, slug: str) -> str:
            with conn.transaction():
                conn.execute("select set_config('request.jwt.claims', %s, true), set_config('role', 'authenticated', true)",
                             (json.dumps({"sub": uid, "role": "authenticated"}),))
                org = str(conn.execute("select public.create_organization(%s, %s)", (slug, slug)).fetchone()[0])
                conn.execute("reset role")
            return org

        ids = {"uma": user("uma@scope.test"), "olga": user("olga@scope.test")}
        ids["p"] = str(conn.execute("select id from tenancy.organizations where personal_owner_id = %s", (ids["uma"],)).fetchone()[0])
        ids["b"], ids["o"] = created(ids["uma"], "scope-b"), created(ids["olga"], "scope-o")
        for org, months in ((ids["p"], 3), (ids["b"], 3000), (ids["o"], 3)):
            conn.execute("insert into billing.invoices (organization_id, period_start, period_end, currency, status, total_minor, finalized_at, "
                         "paid_at) select %s, d, d + 1, 'USD', 'paid', 100, d + 1, d + 2 from generate_series(1, %s) g "
                         "cross join lateral (select date '1800-01-01' + g * 31 as d) x", (org, months))
        conn.execute("insert into app.projects (organization_id, title) values (%s, 'P project'), (%s, 'B project')", (ids["p"], ids["b"]))
        conn.execute("analyze billing.invoices")
    return ids


def orgs_seen(conn: psycopg.Connection) -> set[str]:
    return {str(r[0]) for r in conn.execute("select distinct organization_id from billing.invoices").fetchall()}


def test_a_scoped_request_sees_and_writes_its_organization_only(dsn: str, tenants: dict[str, str]) -> None:
    t = tenants
    with psycopg.connect(dsn) as conn:
        request(conn, t["uma"])
        assert conn.execute("select current_user").fetchone()[0] == "authenticated"
        assert orgs_seen(conn) == {t["p"], t["b"]}
        assert conn.execute("update app.projects set title = 'x' where organization_id = %s", (t["p"],)).rowcount == 1
        conn.rollback()
        for how in ({"claims": {"organization_id": t["b"]}}, {"headers": {"x-organization-id": t["b"]}}):
            request(conn, t["uma"], **how)
            assert conn.execute("select current_user").fetchone()[0] == "organization_scoped", how
            assert orgs_seen(conn) == {t["b"]}, how
            assert [str(r[0]) for r in conn.execute("select id from tenancy.organizations").fetchall()] == [t["b"]]
            # The other organization's rows: not updated, not deleted, not inserted.
            assert conn.execute("update app.projects set title = 'x' where organization_id = %s", (t["p"],)).rowcount == 0
            assert conn.execute("delete from app.projects where organization_id = %s", (t["p"],)).rowcount == 0
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
                conn.execute("insert into app.projects (organization_id, title) values (%s, 'elsewhere')", (t["p"],))
            conn.rollback()
            request(conn, t["uma"], **how)
            conn.execute("insert into app.projects (organization_id, title) values (%s, 'here')", (t["b"],))
            conn.rollback()


def test_scope_request_refuses_a_name_it_may_not_use(dsn: str, tenants: dict[str, str]) -> None:
    t = tenants
    cases = [
        ({"claims": {"organization_id": t["o"]}}, psycopg.errors.InsufficientPrivilege, "not an active member of organization"),
        ({"headers": {"x-organization-id": t["o"]}}, psycopg.errors.InsufficientPrivilege, "not an active member of organization"),
        ({"headers": {"x-organization-id": "b"}}, psycopg.errors.InvalidTextRepresentation, "must be a uuid"),
        ({"claims": {"organization_id": t["b"]}, "headers": {"x-organization-id": t["p"]}}, psycopg.errors.InvalidParameterValue,
         "X-Organization-Id header names"),
    ]
    with psycopg.connect(dsn) as conn:
        for how, error, message in cases:
            with pytest.raises(error, match=message):
                request(conn, t["uma"], **how)
            conn.rollback()
        # A suspended membership cannot scope either.
        conn.execute("update tenancy.memberships set status = 'suspended' where organization_id = %s and user_id = %s", (t["b"], t["uma"]))
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="not an active member"):
            request(conn, t["uma"], headers={"x-organization-id": t["b"]})
        conn.rollback()
        # Neither can a deleted organization.
        conn.execute("update tenancy.organizations set status = 'deleted' where id = %s", (t["b"],))
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="not an active member"):
            request(conn, t["uma"], headers={"x-organization-id": t["b"]})
        conn.rollback()
        # Roles other than authenticated are left as they are (platform
        # staff may not even read schema auth).
        for role, uid in (("anon", None), ("service_role", None), ("platform_staff", t["uma"])):
            request(conn, uid, headers={"x-organization-id": t["b"]}, role=role)
            assert conn.execute("select current_user").fetchone()[0] == role
            conn.rollback()
        # An empty claim or header names nothing.
        request(conn, t["uma"], claims={"organization_id": ""}, headers={"x-organization-id": ""})
        assert conn.execute("select current_user").fetchone()[0] == "authenticated"
        conn.rollback()


def test_a_token_naming_the_role_reaches_only_organizations_it_belongs_to(dsn: str, tenants: dict[str, str]) -> None:
    """A token may name organization_scoped itself (no pre-request): the
    scope only narrows, so naming someone else's organization shows
    nothing, and naming none shows nothing."""
    t = tenants
    with psycopg.connect(dsn) as conn:
        for named, seen in ((t["o"], set()), (None, set()), (t["b"], {t["b"]})):
            claims = {"sub": t["uma"], "role": "organization_scoped", **({"organization_id": named} if named else {})}
            conn.execute("select set_config('request.jwt.claims', %s, true), set_config('role', 'organization_scoped', true)",
                         (json.dumps(claims),))
            assert orgs_seen(conn) == seen, named
            conn.rollback()


def plan_nodes(plan: dict) -> list[dict]:
    return [plan] + [n for child in plan.get("Plans", []) for n in plan_nodes(child)]


def test_a_scoped_list_page_reads_the_index_in_order_and_stops(dsn: str, tenants: dict[str, str]) -> None:
    """The list page of organization B (3,000 invoices) as a scoped request:
    an index scan of (organization_id, period_start) in order, no sort, and
    it reads about the page (50 rows), not the tenant. Unscoped, the same
    statement sorts the member's organizations' rows (the documented cost
    of a cross-organization page)."""
    t = tenants
    with psycopg.connect(dsn) as conn:
        def explain() -> list[dict]:
            plan = conn.execute(f"explain (analyze, format json) {PAGE}").fetchone()[0][0]["Plan"]
            conn.rollback()
            return plan_nodes(plan)

        request(conn, t["uma"], headers={"x-organization-id": t["b"]})
        scoped = explain()
        assert not [n for n in scoped if n["Node Type"] == "Sort"], scoped
        scans = [n for n in scoped if n["Node Type"] in ("Index Scan", "Index Only Scan") and n.get("Relation Name") == "invoices"]
        assert scans and scans[0]["Index Name"] == "invoices_one_per_period", scoped
        assert scans[0]["Actual Rows"] <= 50, scans[0]
        request(conn, t["uma"])
        unscoped = explain()
        assert [n for n in unscoped if n["Node Type"] == "Sort"], unscoped


def test_a_scoped_request_acts_in_its_organization_only(dsn: str, tenants: dict[str, str]) -> None:
    """The permission helpers answer for the active organization only, so
    the API functions that check the caller's permission act there and
    nowhere else; a suspended active organization is read-only."""
    t = tenants
    with psycopg.connect(dsn) as conn:
        request(conn, t["uma"])
        assert sorted(conn.execute("select private.org_ids_with_permission('tenant.read')::text[]").fetchone()[0]) == sorted([t["p"], t["b"]])
        assert conn.execute("select public.has_permission(%s, 'member.invite')", (t["p"],)).fetchone()[0] is True
        conn.rollback()
        request(conn, t["uma"], headers={"x-organization-id": t["b"]})
        assert conn.execute("select private.org_ids_with_permission('tenant.read')::text[]").fetchone()[0] == [t["b"]]
        assert conn.execute("select public.has_permission(%s, 'member.invite')", (t["p"],)).fetchone()[0] is False
        assert conn.execute("select public.has_permission(%s, 'member.invite')", (t["b"],)).fetchone()[0] is True
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="member.invite is required in organization"):
            conn.execute("select * from public.invite_member(%s, 'newbie@scope.test')", (t["p"],))
        conn.rollback()
        assert conn.execute("select count(*) from tenancy.invitations where email = 'newbie@scope.test'").fetchone()[0] == 0
        conn.execute("update tenancy.organizations set status = 'suspended' where id = %s", (t["b"],))
        request(conn, t["uma"], headers={"x-organization-id": t["b"]})
        assert orgs_seen(conn) == {t["b"]}
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute("insert into app.projects (organization_id, title) values (%s, 'while suspended')", (t["b"],))
        conn.rollback()
