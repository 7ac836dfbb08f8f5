"""Invite a member and accept the invitation.

The owner (any member with `member.invite`) invites an email address and
gets a one-time token to send; the invitee signs in with that address and
accepts it, which makes the membership.

A member takes a paid seat, and the plan's seat limit decides at both
steps: on a plan without seat overage, an invitation or a join past the
limit is refused with 54000 (psycopg.errors.ProgramLimitExceeded). The free
plan's one seat is its owner's, so the organization first moves to a plan
with seats: the payment provider's `subscription.updated`, stored and
applied by the back end (payment_webhook.py).

    python examples/python/invitations.py [DSN]
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import psycopg
from tenantdb.client import as_user, connect, sign_up

from create_organization import create_organization
from payment_webhook import ingest_payment_event, process_payment_events, subscription_updated
from postgrest import run_example


def invite_member(conn: psycopg.Connection, user_id: str, organization_id: str, email: str,
                  role_key: str = "tenant_member") -> tuple[str, str]:
    """supabase.rpc('invite_member', {p_organization_id, p_email, p_role_key}) — as the inviter.
    Returns (invitation_id, token); only the token's sha256 is stored, so send it now."""
    with as_user(conn, user_id):
        row = conn.execute("select * from public.invite_member(p_organization_id => %s, p_email => %s, p_role_key => %s)",
                           (organization_id, email, role_key)).fetchone()
    return str(row[0]), row[1]


def accept_invitation(conn: psycopg.Connection, user_id: str, token: str) -> str:
    """supabase.rpc('accept_invitation', {p_token}) — as the invitee (signed in with the invited
    email). Returns the organization joined."""
    with as_user(conn, user_id):
        row = conn.execute("select * from public.accept_invitation(p_token => %s)", (token,)).fetchone()
    return str(row[0])


def main(dsn: str) -> dict:
    run = uuid.uuid4().hex[:8]
    with connect(dsn) as conn:
        owner = sign_up(conn, f"owner-{run}@example.com")
        org = create_organization(conn, owner, f"Acme {run}", f"acme-{run}")
        upgrade = subscription_updated(org, "pro", f"sub_{run}")  # a plan with seats for a team
        ingest_payment_event(conn, "stripe", f"evt_{uuid.uuid4().hex}", "subscription.updated", upgrade, datetime.now(timezone.utc))
        process_payment_events(conn, f"example-worker-{run}")
        email = f"teammate-{run}@example.com"
        invitation, token = invite_member(conn, owner, org, email)
        teammate = sign_up(conn, email)
        joined = accept_invitation(conn, teammate, token)
    print(f"{email} invited ({invitation}) and joined {joined}")
    result = {"owner_id": owner, "organization_id": org, "plan_key": upgrade["plan_key"], "invitation_id": invitation,
              "member_id": teammate, "joined": joined}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    run_example(main, __doc__)
