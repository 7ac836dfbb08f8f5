"""The API's parameter names are its contract: PostgREST and
supabase.rpc(name, {args}) call functions by parameter name. Every function
of the API schema names its parameters p_<what>, and an organization is
p_organization_id, except where a design document names it otherwise
(seed 004's rpc calls pass p_org_id)."""

from __future__ import annotations

import re

import psycopg

CONVENTION = re.compile(r"^p_[a-z][a-z0-9_]*$")
# Where a seed's own call names the organization another way.
SEED_NAMES = {("client_stats", "p_org_id"), ("search_clients", "p_org_id")}

API_PARAMETERS = """
select p.proname, a.name, a.mode
  from pg_catalog.pg_proc p
  join pg_catalog.pg_namespace n on n.oid = p.pronamespace
 cross join lateral unnest(coalesce(p.proargnames, array_fill(''::text, array[p.pronargs])),
                           coalesce(p.proargmodes::text[], array_fill('i'::text, array[p.pronargs]))) as a (name, mode)
 where n.nspname = 'public' and p.prokind = 'f'
   and not exists (select from pg_catalog.pg_depend d where d.objid = p.oid and d.deptype = 'e')
   and a.mode in ('i', 'b', 'v')
 order by 1, 2
"""


def api_parameters(dsn: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(dsn) as conn:
        return [tuple(r) for r in conn.execute(API_PARAMETERS).fetchall()]


def test_every_api_parameter_is_named_p_something(dsn: str) -> None:
    params = api_parameters(dsn)
    assert len({f for f, _, _ in params}) >= 60, "the API schema lost its functions"
    broken = sorted({(f, name) for f, name, _ in params if not CONVENTION.match(name or "")})
    assert broken == [], f"API parameters outside the p_ convention: {broken}"


def test_an_organization_is_p_organization_id(dsn: str) -> None:
    odd = sorted({(f, name) for f, name, _ in api_parameters(dsn)
                  if re.match(r"^p_(org|organization)(_id)?$", name) and name != "p_organization_id"
                  and (f, name) not in SEED_NAMES})
    assert odd == [], f"organization parameters not named p_organization_id: {odd}"


def test_the_check_sees_a_broken_name(dsn: str) -> None:
    """The catalog query finds a function that breaks the convention (so the
    tests above can fail)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("create function public.tenantdb_probe(org_id uuid) returns int language sql as 'select 1'")
    assert ("tenantdb_probe", "org_id", "i") in api_parameters(dsn)


def test_named_calls_from_the_seeds_work(dsn: str) -> None:
    """Seed 003's documented named call, and seed 001's positional one."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        uid = conn.execute("insert into auth.users (email) values ('named@calls.test') returning id").fetchone()[0]
        org = conn.execute("select id from tenancy.organizations where personal_owner_id = %s", (uid,)).fetchone()[0]
        snapshot = conn.execute(
            "select record_organization_usage(p_organization_id => %s, p_period_start => null)", (org,)).fetchone()[0]
        assert snapshot is not None
        access = conn.execute("select check_feature_access(%s, 'max_records', %s)", (uid, org)).fetchone()[0]
        assert access["feature"] == "max_records" and access["plan"] == "free"
