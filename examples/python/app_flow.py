"""The six calls an app makes, in the order a new customer meets them:

1. the owner creates an organization (create_organization);
2. the app checks a feature gate (check_feature_access);
3. the back end records usage, then retries the same call (record_usage);
4. the payment provider's webhook says the subscription is now Pro, and is
   delivered twice (ingest_payment_event), then a worker applies it — the
   free plan's one seat is the owner's, so a team needs a plan with seats
   (on the free plan the invitation below is refused with 54000);
5. the owner invites a teammate, who accepts (invite_member,
   accept_invitation), and the teammate's usage is recorded; the gate now
   counts all of it;
6. the billing job invoices the current period, and the owner lists the
   invoices (billing.invoices) — the teammate, without billing.view, sees none.
   The period began on Free, so its invoice bills the Free plan (0); the
   plan in force when a period starts is what its invoice bills, so Pro
   appears on the next period's invoice.

    python examples/python/app_flow.py [DSN]     # e.g. DSN="$(tenantdb up | tail -1)"

The last line of output is a JSON summary (ids, answers).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

from tenantdb.client import connect, sign_up

from create_organization import create_organization
from feature_access import check_feature_access
from invitations import accept_invitation, invite_member
from invoices import bill_current_period, list_invoices
from payment_webhook import ingest_payment_event, process_payment_events, subscription_updated
from postgrest import run_example
from record_usage import record_usage

FEATURE = "max_api_calls_per_month"  # measured by meter api_call


def main(dsn: str) -> dict:
    run = uuid.uuid4().hex[:8]
    with connect(dsn) as conn:
        owner = sign_up(conn, f"owner-{run}@example.com")
        org = create_organization(conn, owner, f"Acme {run}", f"acme-{run}")
        print(f"1. organization {org}, owner {owner}")

        before = check_feature_access(conn, owner, FEATURE, org)
        print(f"2. {FEATURE} on {before['plan']}: limit {before['limit']}, used {before['used']}, allowed {before['allowed']}")

        key = f"api-request:{uuid.uuid4()}"
        usage = record_usage(conn, org, "api_call", 5, key)
        usage_retry = record_usage(conn, org, "api_call", 5, key)
        print(f"3. usage {usage[0]}; retry duplicate: {usage_retry[1]}")

        provider_event_id = f"evt_{uuid.uuid4().hex}"
        payload = subscription_updated(org, "pro", f"sub_{run}")
        occurred_at = datetime.now(timezone.utc)
        webhook = ingest_payment_event(conn, "stripe", provider_event_id, "subscription.updated", payload, occurred_at)
        webhook_again = ingest_payment_event(conn, "stripe", provider_event_id, "subscription.updated", payload, occurred_at)
        applied = process_payment_events(conn, f"example-worker-{run}")
        print(f"4. webhook {webhook[0]} stored; redelivery duplicate: {webhook_again[1]}; applied: {applied}")

        teammate_email = f"teammate-{run}@example.com"
        invitation, token = invite_member(conn, owner, org, teammate_email)
        teammate = sign_up(conn, teammate_email)
        accept_invitation(conn, teammate, token)
        by_member = record_usage(conn, org, "api_call", 1, f"api-request:{uuid.uuid4()}", user_id=teammate)
        after = check_feature_access(conn, owner, FEATURE, org)
        print(f"5. {teammate_email} accepted invitation {invitation}; "
              f"{FEATURE} on {after['plan']}: used {after['used']} of {after['limit']}")

        invoice, total = bill_current_period(conn, org)
        owner_sees = list_invoices(conn, owner, org)
        teammate_sees = list_invoices(conn, teammate, org)
        print(f"6. invoice {invoice} total {total}; owner sees {len(owner_sees)}, teammate sees {len(teammate_sees)}")

    result = {
        "organization_id": org, "owner_id": owner, "member_id": teammate, "invitation_id": invitation,
        "feature_key": FEATURE, "access_before": before, "access_after": after,
        "idempotency_key": key, "usage": usage, "usage_retry": usage_retry, "usage_by_member": by_member,
        "provider": "stripe", "provider_event_id": provider_event_id, "webhook": webhook,
        "webhook_redelivery": webhook_again, "applied": applied,
        "invoice_id": invoice, "invoice_total_minor": total,
        "owner_invoices": owner_sees, "member_invoices": teammate_sees,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    run_example(main, __doc__)
