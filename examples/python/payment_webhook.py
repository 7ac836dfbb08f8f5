"""Ingest a payment provider's webhook, then apply it.

The webhook handler (a Supabase edge function, or your back end) verifies
the provider's signature, maps the provider's event to one of tenantdb's
normalized types and stores it with the service role key. Storing is
idempotent per (provider, provider_event_id): a redelivery answers
`duplicate = true` and writes nothing. A worker (cron) then applies stored
events with `process_payment_events` (or `claim_payment_events` +
`handle_payment_event`).

    python examples/python/payment_webhook.py [DSN]
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import psycopg
from psycopg.types.json import Jsonb
from tenantdb.client import as_service, connect, sign_up

from create_organization import create_organization
from postgrest import run_example


def ingest_payment_event(conn: psycopg.Connection, provider: str, provider_event_id: str, event_type: str,
                         payload: dict, occurred_at: datetime) -> tuple[str, bool]:
    """supabase.rpc('ingest_payment_event', {p_provider, p_provider_event_id, p_event_type, p_payload,
    p_occurred_at}) — service role only. Returns (event_id, duplicate)."""
    with as_service(conn):
        row = conn.execute("select * from public.ingest_payment_event(p_provider => %s, p_provider_event_id => %s, "
                           "p_event_type => %s, p_payload => %s, p_occurred_at => %s)",
                           (provider, provider_event_id, event_type, Jsonb(payload), occurred_at)).fetchone()
    return str(row[0]), row[1]


def process_payment_events(conn: psycopg.Connection, worker: str, max_events: int = 100) -> list[tuple[str, str, str | None]]:
    """The worker: applies what is pending (service role). Returns (event_id, outcome, error) per event."""
    with as_service(conn):
        rows = conn.execute("select * from public.process_payment_events(p_worker => %s, p_max_events => %s)",
                            (worker, max_events)).fetchall()
    return [(str(r[0]), r[1], r[2]) for r in rows]


def subscription_updated(organization_id: str, plan_key: str, provider_subscription_id: str) -> dict:
    """The normalized payload of `subscription.updated` (an adapter maps the provider's event to it)."""
    return {"organization_id": organization_id, "plan_key": plan_key, "status": "active",
            "provider_subscription_id": provider_subscription_id}


def main(dsn: str) -> dict:
    run = uuid.uuid4().hex[:8]
    event_id = f"evt_{uuid.uuid4().hex}"
    with connect(dsn) as conn:
        owner = sign_up(conn, f"owner-{run}@example.com")
        org = create_organization(conn, owner, f"Acme {run}", f"acme-{run}")
        payload = subscription_updated(org, "pro", f"sub_{run}")
        occurred_at = datetime.now(timezone.utc)
        first = ingest_payment_event(conn, "stripe", event_id, "subscription.updated", payload, occurred_at)
        redelivery = ingest_payment_event(conn, "stripe", event_id, "subscription.updated", payload, occurred_at)
        processed = process_payment_events(conn, f"example-worker-{run}")
    print(f"stored {first[0]} (duplicate: {first[1]}); redelivery duplicate: {redelivery[1]}; applied: {processed}")
    result = {"user_id": owner, "organization_id": org, "provider": "stripe", "provider_event_id": event_id,
              "plan_key": "pro", "first": first, "redelivery": redelivery, "processed": processed}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    run_example(main, __doc__)
