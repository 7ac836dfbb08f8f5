"""Create an organization: the signed-in user becomes its tenant_owner.

    python examples/python/create_organization.py [DSN]
"""

from __future__ import annotations

import json
import uuid

import psycopg
from tenantdb.client import as_user, connect, sign_up

from postgrest import run_example


def create_organization(conn: psycopg.Connection, user_id: str, name: str, slug: str) -> str:
    """supabase.rpc('create_organization', {p_name, p_slug}) — as the user. Returns its id."""
    with as_user(conn, user_id):
        row = conn.execute("select * from public.create_organization(p_name => %s, p_slug => %s)", (name, slug)).fetchone()
    return str(row[0])


def main(dsn: str) -> dict:
    run = uuid.uuid4().hex[:8]
    with connect(dsn) as conn:
        owner = sign_up(conn, f"owner-{run}@example.com")
        org = create_organization(conn, owner, f"Acme {run}", f"acme-{run}")
    print(f"organization {org} created by {owner}")
    result = {"user_id": owner, "organization_id": org, "slug": f"acme-{run}"}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    run_example(main, __doc__)
