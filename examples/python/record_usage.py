"""Record usage once per idempotency key.

The back end records usage with the service role (`as_service`); a member
whose role holds `usage.record` may record for their own organization too
(`user_id=`). A retry with the same key writes nothing and answers
`duplicate = true` with the first event's id.

    python examples/python/record_usage.py [DSN]
"""

from __future__ import annotations

import json
import uuid

import psycopg
from tenantdb.client import as_service, as_user, connect, sign_up

from create_organization import create_organization
from postgrest import run_example


def record_usage(conn: psycopg.Connection, organization_id: str, meter_key: str, quantity: int,
                 idempotency_key: str, user_id: str | None = None) -> tuple[str, bool]:
    """supabase.rpc('record_usage', {p_organization_id, p_meter_key, p_quantity, p_idempotency_key})
    — with the service role key, or as a member (user_id) with usage.record.
    Returns (event_id, duplicate)."""
    with (as_user(conn, user_id) if user_id else as_service(conn)):
        row = conn.execute("select * from public.record_usage(p_organization_id => %s, p_meter_key => %s, "
                           "p_quantity => %s, p_idempotency_key => %s)",
                           (organization_id, meter_key, quantity, idempotency_key)).fetchone()
    return str(row[0]), row[1]


def main(dsn: str) -> dict:
    run = uuid.uuid4().hex[:8]
    key = f"api-request:{uuid.uuid4()}"  # e.g. the id of the API request being metered
    with connect(dsn) as conn:
        owner = sign_up(conn, f"owner-{run}@example.com")
        org = create_organization(conn, owner, f"Acme {run}", f"acme-{run}")
        first = record_usage(conn, org, "api_call", 3, key)
        retry = record_usage(conn, org, "api_call", 3, key)  # the same call again: a network retry
    print(f"event {first[0]} (duplicate: {first[1]}); retry -> {retry[0]} (duplicate: {retry[1]})")
    result = {"user_id": owner, "organization_id": org, "idempotency_key": key, "meter_key": "api_call",
              "quantity": 3, "first": first, "retry": retry}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    run_example(main, __doc__)
