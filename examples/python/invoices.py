"""Invoice a billing period (back end) and list an organization's invoices
(as a member).

Invoices are written only by the back end: a billing job, at the start of
each billing period, runs `renew_subscriptions` and then, per
organization, `generate_invoice` (a draft: the plan in advance, the
previous period's overage, upgrade prorations) and `finalize_invoice`
(applies credit, stamps the total, opens it). Members whose role holds
`billing.view` (owners, admins) read them from `billing.invoices`; the
table's policies show each member only their organizations' invoices.
There is no invoice view or function in the API schema: with supabase-js
the `billing` schema must be exposed (see examples/README.md).

    python examples/python/invoices.py [DSN]
"""

from __future__ import annotations

import json
import uuid

import psycopg
from psycopg.rows import dict_row
from tenantdb.client import as_service, as_user, connect, sign_up

from create_organization import create_organization
from postgrest import run_example

INVOICE_COLUMNS = "id, period_start, period_end, status, currency, total_minor, finalized_at"


def current_period_start(conn: psycopg.Connection, organization_id: str):
    """The first day of the organization's current billing period, in its billing time zone
    (the live subscription's period; billing.settings, default UTC). Service role."""
    with as_service(conn):
        return conn.execute(
            "select (s.current_period_start at time zone coalesce(b.time_zone, 'UTC'))::date "
            "from billing.subscriptions s left join billing.settings b on b.organization_id = s.organization_id "
            "where s.organization_id = %s and s.status <> 'canceled'", (organization_id,)).fetchone()[0]


def bill_current_period(conn: psycopg.Connection, organization_id: str) -> tuple[str, int]:
    """The billing job for one organization (service role): draft the current period's invoice
    (idempotent per period) and finalize it. Returns (invoice_id, total_minor)."""
    with as_service(conn):
        conn.execute("select * from public.renew_subscriptions()")  # normally once per run, for every organization
    period_start = current_period_start(conn, organization_id)
    with as_service(conn):
        invoice = conn.execute("select * from public.generate_invoice(p_organization_id => %s, p_period_start => %s)",
                               (organization_id, period_start)).fetchone()[0]
        status = conn.execute("select status from billing.invoices where organization_id = %s and id = %s",
                              (organization_id, invoice)).fetchone()[0]
        if status == "draft":
            total = conn.execute("select * from public.finalize_invoice(p_organization_id => %s, p_invoice_id => %s)",
                                 (organization_id, invoice)).fetchone()[0]
        else:  # a rerun of the job: already finalized
            total = conn.execute("select total_minor from billing.invoices where organization_id = %s and id = %s",
                                 (organization_id, invoice)).fetchone()[0]
    return str(invoice), total


def list_invoices(conn: psycopg.Connection, user_id: str, organization_id: str) -> list[dict]:
    """supabase.schema('billing').from('invoices').select(…).eq('organization_id', …) — as the user.
    A member without billing.view gets an empty list (row-level security), not an error."""
    with as_user(conn, user_id):
        with conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(f"select {INVOICE_COLUMNS} from billing.invoices where organization_id = %s "
                               "order by period_start desc", (organization_id,)).fetchall()
    return [{k: (str(v) if v is not None and not isinstance(v, int) else v) for k, v in r.items()} for r in rows]


def main(dsn: str) -> dict:
    run = uuid.uuid4().hex[:8]
    with connect(dsn) as conn:
        owner = sign_up(conn, f"owner-{run}@example.com")
        org = create_organization(conn, owner, f"Acme {run}", f"acme-{run}")
        invoice, total = bill_current_period(conn, org)
        invoices = list_invoices(conn, owner, org)
    print(f"invoice {invoice} finalized, total {total}; the owner sees {len(invoices)} invoice(s)")
    result = {"user_id": owner, "organization_id": org, "invoice_id": invoice, "total_minor": total,
              "invoices": invoices}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    run_example(main, __doc__)
