"""Check a feature gate: the plan's limit, what this billing period used,
and whether the next unit is allowed.

    python examples/python/feature_access.py [DSN]
"""

from __future__ import annotations

import json
import uuid

import psycopg
from tenantdb.client import as_user, connect, sign_up

from create_organization import create_organization
from postgrest import run_example


def check_feature_access(conn: psycopg.Connection, user_id: str, feature_key: str, organization_id: str) -> dict:
    """supabase.rpc('check_feature_access', {p_user_id, p_feature_key, p_organization_id}) — as the
    user, for themself. Returns {plan, feature, limit, used, remaining, unlimited, allowed,
    overage_unit_price} (limit -1: unlimited)."""
    with as_user(conn, user_id):
        row = conn.execute("select * from public.check_feature_access(p_user_id => %s, p_feature_key => %s, "
                           "p_organization_id => %s)", (user_id, feature_key, organization_id)).fetchone()
    return row[0]


def main(dsn: str) -> dict:
    run = uuid.uuid4().hex[:8]
    with connect(dsn) as conn:
        owner = sign_up(conn, f"owner-{run}@example.com")
        org = create_organization(conn, owner, f"Acme {run}", f"acme-{run}")
        access = check_feature_access(conn, owner, "max_api_calls_per_month", org)
    print(f"{access['feature']} on plan {access['plan']}: {access['used']} of {access['limit']} used, "
          f"allowed: {access['allowed']}")
    result = {"user_id": owner, "organization_id": org, "access": access}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    run_example(main, __doc__)
