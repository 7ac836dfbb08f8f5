"""Settlement from payment webhooks: the provider's invoice events move our
invoices (paid, failed attempts, void, refunds) once per event, in provider
time, with the ledger entries they imply and the subscription's dunning
state; plus the subscription history and reminder look-ahead the design
documents describe. The end-of-month story and the subscription-history use
cases run as one scenario each."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from conftest import ROOT
from test_crm import request, signup
from test_crm_trust import book, refused, service

T0 = datetime(2030, 1, 5, 12, 0, tzinfo=timezone.utc)


def org_of(conn: psycopg.Connection, email: str) -> tuple[str, str]:
    uid = str(conn.execute("insert into auth.users (email) values (%s) returning id", (email,)).fetchone()[0])
    org = str(conn.execute("select id from tenancy.organizations where personal_owner_id = %s", (uid,)).fetchone()[0])
    return uid, org


def webhook(conn: psycopg.Connection, event_id: str, event_type: str, payload: dict, at: datetime) -> list[tuple]:
    """Ingest one provider event and run the inbox, as the back end; returns
    (provider_event_id, outcome, error) of this event (earlier failed events
    are retried by the same run)."""
    with service(conn):
        ev = conn.execute("select event_id from public.ingest_payment_event('stripe', %s, %s, %s, %s)",
                          (event_id, event_type, json.dumps(payload), at)).fetchone()[0]
        return [(event_id, r[0], r[1]) for r in conn.execute("select outcome, error from public.process_payment_events('w') "
                                                             "where event_id = %s", (ev,)).fetchall()]


def replay(conn: psycopg.Connection, event_id: str) -> str:
    """The worker handles an already processed event again."""
    with service(conn):
        ev = conn.execute("select id from billing.payment_events where provider_event_id = %s", (event_id,)).fetchone()[0]
        return conn.execute("select public.handle_payment_event(%s, 'w2')", (ev,)).fetchone()[0]


def open_invoice(conn: psycopg.Connection, org: str, plan: str = "pro") -> tuple[str, int]:
    """An open invoice of the next billing period, on `plan`; its id and total."""
    conn.execute("select public.record_subscription_change(%s, (select id from catalog.plans where key = 'free'), "
                 "(select id from catalog.plans where key = %s), 'upgrade')", (org, plan))
    start = conn.execute("select end_date from private.billing_period(%s, now())", (org,)).fetchone()[0]
    inv = str(conn.execute("select public.generate_invoice(%s, %s)", (org, start)).fetchone()[0])
    total = conn.execute("select public.finalize_invoice(%s, %s)", (org, inv)).fetchone()[0]
    return inv, total


def invoice(conn: psycopg.Connection, inv: str) -> dict:
    cur = conn.execute("select * from billing.invoices where id = %s", (inv,))
    return dict(zip([c.name for c in cur.description], cur.fetchone()))


def sub_status(conn: psycopg.Connection, org: str) -> str:
    return conn.execute("select status from billing.subscriptions where organization_id = %s order by created_at desc limit 1",
                        (org,)).fetchone()[0]


def ref(org: str, inv: str, **more: object) -> dict:
    return {"organization_id": org, "provider_invoice_id": "in_" + inv[:8], "metadata": {"invoice_id": inv}, **more}


# --- invoice.paid -------------------------------------------------------------

def test_invoice_paid_marks_the_invoice_paid_at_the_event_time_once(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        _, org = org_of(conn, "paid@s.test")
        inv, total = open_invoice(conn, org)
        assert webhook(conn, "evt_p1", "invoice.paid", ref(org, inv, amount_paid_minor=total), T0) == [("evt_p1", "processed", None)]
        row = invoice(conn, inv)
        assert (row["status"], row["paid_at"], row["amount_paid_minor"]) == ("paid", T0, total)
        assert row["provider_invoice_id"] == "in_" + inv[:8], "the provider's id is linked on first sight"
        # The same event handled again, and Stripe's twin event: nothing more.
        assert replay(conn, "evt_p1") == "skipped"
        assert webhook(conn, "evt_p2", "invoice.payment_succeeded", {"organization_id": org, "provider_invoice_id": "in_" + inv[:8]},
                       T0 + timedelta(seconds=1)) == [("evt_p2", "skipped", None)]
        assert invoice(conn, inv)["paid_at"] == T0
        assert conn.execute("select count(*) filter (where applied), count(*) from billing.invoice_settlements where invoice_id = %s",
                            (inv,)).fetchone() == (1, 2)


def test_an_overpayment_is_credited_with_source_billing(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        _, org = org_of(conn, "over@s.test")
        inv, total = open_invoice(conn, org)
        webhook(conn, "evt_o1", "invoice.paid", ref(org, inv, amount_paid_minor=total + 250), T0)
        assert conn.execute("select source, amount_minor from billing.credit_ledger where organization_id = %s", (org,)).fetchall() == [
            ("billing", 250)]
        assert conn.execute("select public.credit_balance(%s)", (org,)).fetchone()[0] == 250


def test_the_ledger_accepts_source_billing_and_still_refuses_an_unknown_one(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        _, org = org_of(conn, "ledger@s.test")
        with service(conn):
            conn.execute("select * from public.post_credit(%s, 500, 'USD', 'billing', 'k1', 'from billing')", (org,))
            refused(conn, psycopg.errors.CheckViolation, "select * from public.post_credit(%s, 500, 'USD', 'gift', 'k2', 'x')", (org,),
                    match="credit_ledger_source_known")
        assert conn.execute("select array_agg(source) from billing.credit_ledger where organization_id = %s", (org,)).fetchone()[0] == ["billing"]


# --- failed payments and dunning ----------------------------------------------

def test_a_failed_payment_is_counted_and_the_subscription_goes_past_due_then_active(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        _, org = org_of(conn, "fail@s.test")
        inv, total = open_invoice(conn, org)
        assert webhook(conn, "evt_f1", "invoice.payment_failed", ref(org, inv, error="card_declined"), T0)[0][1] == "processed"
        assert replay(conn, "evt_f1") == "skipped"
        # payment.failed naming the invoice counts too.
        assert webhook(conn, "evt_f2", "payment.failed", {"organization_id": org, "invoice_id": inv, "error": "insufficient_funds"},
                       T0 + timedelta(days=1))[0][1] == "processed"
        row = invoice(conn, inv)
        assert (row["status"], row["failed_payment_count"], row["last_payment_failed_at"], row["last_payment_error"]) == (
            "open", 2, T0 + timedelta(days=1), "insufficient_funds")
        assert sub_status(conn, org) == "past_due"
        # The seed's "failed invoices", one query (docs/concepts-billing.md).
        failed = conn.execute("select id from billing.invoices where organization_id = %s and status = 'open' and failed_payment_count > 0",
                              (org,)).fetchall()
        assert [str(r[0]) for r in failed] == [inv]
        webhook(conn, "evt_f3", "invoice.paid", ref(org, inv), T0 + timedelta(days=2))
        assert (invoice(conn, inv)["status"], sub_status(conn, org)) == ("paid", "active")
        assert conn.execute("select change_type, provider_event_id from billing.subscription_history where organization_id = %s "
                            "and change_type in ('status_changed', 'reactivated') order by created_at", (org,)).fetchall() == [
            ("status_changed", "evt_f1"), ("reactivated", "evt_f3")]


def test_the_subscription_is_canceled_after_the_configured_number_of_failures(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        _, org = org_of(conn, "dunning@s.test")
        conn.execute("insert into billing.settings (organization_id, dunning_max_failures) values (%s, 2)", (org,))
        inv, _ = open_invoice(conn, org)
        webhook(conn, "evt_d1", "invoice.payment_failed", ref(org, inv), T0)
        assert sub_status(conn, org) == "past_due"
        webhook(conn, "evt_d2", "invoice.payment_failed", ref(org, inv), T0 + timedelta(days=3))
        assert sub_status(conn, org) == "canceled"
        assert conn.execute("select canceled_at from billing.subscriptions where organization_id = %s", (org,)).fetchone()[0] == \
            T0 + timedelta(days=3)
        assert invoice(conn, inv)["status"] == "open", "the debt stays open (Stripe's default)"
        refused(conn, psycopg.errors.CheckViolation, "update billing.settings set dunning_max_failures = 0 where organization_id = %s", (org,),
                match="settings_dunning_max_failures_range")


def test_an_older_event_never_undoes_a_newer_state(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        _, org = org_of(conn, "order@s.test")
        inv, _ = open_invoice(conn, org)
        # The retry succeeded at T0+1d; the failure of T0 is delivered after it.
        webhook(conn, "evt_r2", "invoice.paid", ref(org, inv), T0 + timedelta(days=1))
        assert webhook(conn, "evt_r1", "invoice.payment_failed", ref(org, inv), T0)[0][1] == "skipped"
        assert (invoice(conn, inv)["status"], sub_status(conn, org)) == ("paid", "active")
        # A void older than the payment is recorded, not applied; a newer one is refused (refund instead).
        assert webhook(conn, "evt_r0", "invoice.voided", ref(org, inv), T0 - timedelta(days=1))[0][1] == "skipped"
        out = webhook(conn, "evt_r3", "invoice.voided", ref(org, inv), T0 + timedelta(days=5))
        assert out[0][1] == "failed" and out[0][2].startswith("55000")
        assert invoice(conn, inv)["status"] == "paid"

        # Voided first (newer), then an older payment: stays void.
        _, org2 = org_of(conn, "order2@s.test")
        inv2, _ = open_invoice(conn, org2)
        webhook(conn, "evt_v2", "invoice.voided", ref(org2, inv2), T0 + timedelta(days=1))
        assert webhook(conn, "evt_v1", "invoice.paid", ref(org2, inv2), T0)[0][1] == "skipped"
        row = invoice(conn, inv2)
        assert (row["status"], row["voided_at"]) == ("void", T0 + timedelta(days=1))


def test_a_voided_invoice_gives_its_credit_back(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        _, org = org_of(conn, "void@s.test")
        with service(conn):
            conn.execute("select * from public.post_credit(%s, 700, 'USD', 'promo', 'promo-1', 'welcome')", (org,))
        inv, total = open_invoice(conn, org)
        assert conn.execute("select public.credit_balance(%s)", (org,)).fetchone()[0] == 0
        webhook(conn, "evt_vo", "invoice.voided", {"organization_id": org, "invoice_id": inv}, T0)
        assert invoice(conn, inv)["status"] == "void"
        assert conn.execute("select public.credit_balance(%s)", (org,)).fetchone()[0] == 700


def test_refunds_keep_the_invoice_paid_and_may_go_to_credit(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        _, org = org_of(conn, "refund@s.test")
        inv, total = open_invoice(conn, org)
        # Delivered before the payment: fails, and is applied on a later run once the invoice is paid.
        out = webhook(conn, "evt_rf1", "charge.refunded", ref(org, inv, amount_refunded_minor=500, to_credit=True), T0 + timedelta(hours=2))
        assert out[0][1] == "failed" and out[0][2].startswith("55000")
        outcomes = webhook(conn, "evt_pd", "invoice.paid", ref(org, inv), T0)
        with service(conn):
            conn.execute("update billing.payment_event_processing set locked_until = null")
            outcomes += conn.execute("select outcome from public.process_payment_events('w')").fetchall()
        row = invoice(conn, inv)
        assert (row["status"], row["amount_refunded_minor"]) == ("paid", 500)
        assert conn.execute("select source, amount_minor from billing.credit_ledger where organization_id = %s", (org,)).fetchall() == [
            ("billing", 500)]
        out = webhook(conn, "evt_rf2", "invoice.refunded", ref(org, inv, amount_refunded_minor=total), T0 + timedelta(hours=3))
        assert out[0][1] == "failed" and out[0][2].startswith("22023"), "more than was paid is refused"
        assert invoice(conn, inv)["amount_refunded_minor"] == 500


def test_bad_settlement_events_fail_with_a_clear_error_and_change_nothing(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        _, org = org_of(conn, "bad@s.test")
        _, other = org_of(conn, "other@s.test")
        inv, total = open_invoice(conn, org)
        before = invoice(conn, inv)
        cases = {
            "evt_b1": ("invoice.paid", {"provider_invoice_id": "in_x"}, "22023"),                 # no organization
            "evt_b2": ("invoice.paid", {"organization_id": org}, "22023"),                        # no invoice reference
            "evt_b3": ("invoice.paid", {"organization_id": org, "provider_invoice_id": "in_nope"}, "P0002"),
            "evt_b4": ("invoice.paid", {"organization_id": other, "invoice_id": inv}, "P0002"),   # another organization's invoice
            "evt_b5": ("invoice.paid", ref(org, inv, amount_paid_minor=-1), "22023"),             # negative amount
            "evt_b6": ("invoice.paid", ref(org, inv, currency="EUR"), "22023"),
        }
        for evt, (kind, payload, state) in cases.items():
            out = webhook(conn, evt, kind, payload, T0)
            assert out[0][1] == "failed" and out[0][2].startswith(state), (evt, out)
        after = invoice(conn, inv)
        assert {k: after[k] for k in ("status", "paid_at", "provider_invoice_id", "failed_payment_count")} == \
            {k: before[k] for k in ("status", "paid_at", "provider_invoice_id", "failed_payment_count")}
        assert conn.execute("select count(*) from billing.invoice_settlements").fetchone()[0] == 0


def test_members_cannot_settle_and_read_only_their_own_settlements(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        alice, org = org_of(conn, "alice@s.test")
        bob, _ = org_of(conn, "bob@s.test")
        inv, _ = open_invoice(conn, org)
        webhook(conn, "evt_m1", "invoice.payment_failed", ref(org, inv), T0)
        with request(conn, alice):
            refused(conn, psycopg.errors.InsufficientPrivilege,
                    "select * from public.ingest_payment_event('stripe', 'evt_x', 'invoice.paid', %s, now())", (json.dumps(ref(org, inv)),))
            refused(conn, psycopg.errors.InsufficientPrivilege, "select * from public.process_payment_events('me')")
            refused(conn, psycopg.errors.InsufficientPrivilege,
                    "insert into billing.invoice_settlements (organization_id, invoice_id, payment_event_id, kind, occurred_at, applied) "
                    "select organization_id, invoice_id, payment_event_id, kind, occurred_at, applied from billing.invoice_settlements")
            assert conn.execute("select count(*) from billing.invoice_settlements").fetchone()[0] == 1
        with request(conn, bob):
            assert conn.execute("select count(*) from billing.invoice_settlements").fetchone()[0] == 0
        with conn.transaction():
            conn.execute("select set_config('role', 'anon', true)")
            refused(conn, psycopg.errors.InsufficientPrivilege, "select count(*) from billing.invoice_settlements")
        assert invoice(conn, inv)["status"] == "open"


def test_a_payment_below_the_total_is_paid_as_the_provider_says(dsn: str) -> None:
    """Stripe's amount_paid is lower than the total when the customer's
    balance on Stripe covered part: the invoice is paid, with what was
    collected; no credit is made and refunds stop at what was collected."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        _, org = org_of(conn, "short@s.test")
        inv, total = open_invoice(conn, org)
        collected = total - 300
        assert webhook(conn, "evt_s1", "invoice.paid", ref(org, inv, amount_paid_minor=collected), T0) == [("evt_s1", "processed", None)]
        row = invoice(conn, inv)
        assert (row["status"], row["paid_at"], row["amount_paid_minor"]) == ("paid", T0, collected)
        assert conn.execute("select count(*) from billing.credit_ledger where organization_id = %s", (org,)).fetchone()[0] == 0
        assert conn.execute("select status from billing.payment_event_processing p join billing.payment_events e on e.id = p.event_id "
                            "where e.provider_event_id = 'evt_s1'").fetchone()[0] == "processed", "not left to be retried"
        out = webhook(conn, "evt_s2", "invoice.refunded", ref(org, inv, amount_refunded_minor=collected + 1), T0 + timedelta(hours=1))
        assert out[0][1] == "failed" and out[0][2].startswith("22023"), "no more than was collected is refunded"
        assert webhook(conn, "evt_s3", "invoice.refunded", ref(org, inv, amount_refunded_minor=collected), T0 + timedelta(hours=2))[0][1] == \
            "processed"
        assert invoice(conn, inv)["amount_refunded_minor"] == collected


def ledger(conn: psycopg.Connection, org: str) -> list[tuple]:
    return conn.execute("select source, amount_minor from billing.credit_ledger where organization_id = %s order by created_at, id",
                        (org,)).fetchall()


def test_refunding_an_overpaid_invoice_returns_the_overpayment_credit_first(dsn: str) -> None:
    """An overpayment lives on as credit; when the provider refunds it, the
    credit goes (money is never returned twice)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        _, org = org_of(conn, "overrefund@s.test")
        inv, total = open_invoice(conn, org)
        webhook(conn, "evt_or1", "invoice.paid", ref(org, inv, amount_paid_minor=total + 250), T0)
        assert conn.execute("select public.credit_balance(%s)", (org,)).fetchone()[0] == 250
        # The excess refunded: its credit is taken back.
        assert webhook(conn, "evt_or2", "charge.refunded", ref(org, inv, amount_refunded_minor=250), T0 + timedelta(hours=1))[0][1] == \
            "processed"
        assert ledger(conn, org) == [("billing", 250), ("billing", -250)]
        # Then the invoice's own payment, in full; nothing more.
        assert webhook(conn, "evt_or3", "charge.refunded", ref(org, inv, amount_refunded_minor=total), T0 + timedelta(hours=2))[0][1] == \
            "processed"
        assert conn.execute("select public.credit_balance(%s)", (org,)).fetchone()[0] == 0
        assert (invoice(conn, inv)["amount_refunded_minor"], len(ledger(conn, org))) == (total + 250, 2)
        out = webhook(conn, "evt_or4", "charge.refunded", ref(org, inv, amount_refunded_minor=1), T0 + timedelta(hours=3))
        assert out[0][1] == "failed" and out[0][2].startswith("22023")

        # All of it in one refund: the same end.
        _, org2 = org_of(conn, "overrefund2@s.test")
        inv2, total2 = open_invoice(conn, org2)
        webhook(conn, "evt_oa1", "invoice.paid", ref(org2, inv2, amount_paid_minor=total2 + 250), T0)
        webhook(conn, "evt_oa2", "invoice.refunded", ref(org2, inv2, amount_refunded_minor=total2 + 250), T0 + timedelta(hours=1))
        assert conn.execute("select public.credit_balance(%s)", (org2,)).fetchone()[0] == 0

        # To credit: the customer ends with what was paid as credit, once.
        _, org3 = org_of(conn, "overrefund3@s.test")
        inv3, total3 = open_invoice(conn, org3)
        webhook(conn, "evt_oc1", "invoice.paid", ref(org3, inv3, amount_paid_minor=total3 + 250), T0)
        webhook(conn, "evt_oc2", "invoice.refunded", ref(org3, inv3, amount_refunded_minor=total3 + 250, to_credit=True),
                T0 + timedelta(hours=1))
        assert conn.execute("select public.credit_balance(%s)", (org3,)).fetchone()[0] == total3 + 250
        assert invoice(conn, inv3)["amount_refunded_minor"] == total3 + 250


def test_refunding_an_overpayment_already_spent_is_refused_and_changes_nothing(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        _, org = org_of(conn, "spent@s.test")
        inv, total = open_invoice(conn, org)
        webhook(conn, "evt_sp1", "invoice.paid", ref(org, inv, amount_paid_minor=total + 250), T0)
        with service(conn):
            conn.execute("select * from public.post_credit(%s, -200, 'USD', 'admin', 'spend-1', 'spent on an add-on')", (org,))
        out = webhook(conn, "evt_sp2", "charge.refunded", ref(org, inv, amount_refunded_minor=total + 250), T0 + timedelta(hours=1))
        assert out[0][1] == "failed" and out[0][2].startswith("23514"), out
        assert invoice(conn, inv)["amount_refunded_minor"] == 0
        assert conn.execute("select public.credit_balance(%s)", (org,)).fetchone()[0] == 50
        assert conn.execute("select count(*) from billing.invoice_settlements where invoice_id = %s and kind = 'refunded'",
                            (inv,)).fetchone()[0] == 0


def test_one_failed_attempt_reported_twice_counts_once(dsn: str) -> None:
    """Stripe reports an attempt as invoice.payment_failed (attempt_count)
    and as payment.failed (its payment intent, the same one on every retry):
    two real attempts are two, and the subscription is not canceled."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        _, org = org_of(conn, "twice@s.test")
        inv, _ = open_invoice(conn, org)
        for n in (1, 2):
            at = T0 + timedelta(days=3 * n)
            webhook(conn, f"evt_tw{n}a", "invoice.payment_failed", ref(org, inv, attempt_count=n), at)
            webhook(conn, f"evt_tw{n}b", "payment.failed", {"organization_id": org, "invoice_id": inv, "payment_intent": "pi_1",
                                                           "failure_message": "card_declined"}, at)
        row = invoice(conn, inv)
        assert (row["failed_payment_count"], row["last_payment_error"]) == (2, "card_declined")
        assert sub_status(conn, org) == "past_due"
        # A late report of attempt 1 never lowers the count; attempt 4 cancels (default limit 4).
        webhook(conn, "evt_tw0", "invoice.payment_failed", ref(org, inv, attempt_count=1), T0 + timedelta(days=7))
        assert invoice(conn, inv)["failed_payment_count"] == 2
        assert sub_status(conn, org) == "past_due"
        webhook(conn, "evt_tw4", "invoice.payment_failed", ref(org, inv, attempt_count=4), T0 + timedelta(days=12))
        assert (invoice(conn, inv)["failed_payment_count"], sub_status(conn, org)) == (4, "canceled")
        assert conn.execute("select count(*) from billing.subscription_history where organization_id = %s and change_type = 'status_changed'",
                            (org,)).fetchone()[0] == 1, "past_due once"
        out = webhook(conn, "evt_twx", "invoice.payment_failed", ref(org, inv, attempt_count=0), T0 + timedelta(days=13))
        assert out[0][1] == "failed" and out[0][2].startswith("22023")


def test_without_attempt_count_distinct_payments_are_counted(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        _, org = org_of(conn, "charges@s.test")
        conn.execute("insert into billing.settings (organization_id, dunning_max_failures) values (%s, 2)", (org,))
        inv, _ = open_invoice(conn, org)
        for evt, charge, day in (("evt_c1", "ch_1", 1), ("evt_c1b", "ch_1", 1), ("evt_c1c", "ch_1", 2)):
            webhook(conn, evt, "payment.failed", {"organization_id": org, "invoice_id": inv, "provider_payment_id": charge},
                    T0 + timedelta(days=day))
        assert (invoice(conn, inv)["failed_payment_count"], sub_status(conn, org)) == (1, "past_due")
        webhook(conn, "evt_c2", "payment.failed", {"organization_id": org, "invoice_id": inv, "provider_payment_id": "ch_2"},
                T0 + timedelta(days=3))
        assert (invoice(conn, inv)["failed_payment_count"], sub_status(conn, org)) == (2, "canceled")


def test_settlement_tables_pass_verify_and_bound_their_text(dsn: str) -> None:
    out = subprocess.run([sys.executable, str(ROOT / "cli.py"), "verify", "--dsn", dsn, "--json"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120).stdout
    problems = [p for p in json.loads(out)["problems"] if p["object"].startswith(("billing.invoices", "billing.invoice_settlements"))]
    assert problems == []
    with psycopg.connect(dsn, autocommit=True) as conn:
        _, org = org_of(conn, "bounds@s.test")
        inv, _ = open_invoice(conn, org)
        refused(conn, psycopg.errors.CheckViolation, "update billing.invoices set last_payment_error = repeat('x', 2001) where id = %s",
                (inv,), match="invoices_last_payment_error_length")
        # The once-per-event look-up (apply_invoice_event's) goes through the unique index, on both columns.
        webhook(conn, "evt_ix", "invoice.payment_failed", ref(org, inv), T0)
        event = conn.execute("select id from billing.payment_events where provider_event_id = 'evt_ix'").fetchone()[0]
        with conn.transaction():
            conn.execute("set local enable_seqscan = off")
            plan = "\n".join(r[0] for r in conn.execute(
                "explain select exists (select from billing.invoice_settlements x where x.organization_id = %s and x.payment_event_id = %s)",
                (org, event)).fetchall())
        assert "invoice_settlements_once_per_event" in plan and "organization_id" in plan.split("Index Cond")[1], plan


# --- subscription history (record_subscription_change, cancellations) ---------

def test_a_cancellation_row_has_no_new_plan(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        _, org = org_of(conn, "cancel@s.test")
        with service(conn):
            conn.execute("select public.cancel_subscription(%s, false)", (org,))
        assert conn.execute("select old_plan_key, new_plan_key, new_plan_id from billing.subscription_history "
                            "where organization_id = %s and change_type = 'cancelled'", (org,)).fetchall() == [("free", None, None)]


def test_record_subscription_change_beside_the_real_change_writes_one_row(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        uid, org = org_of(conn, "flow@s.test")
        ids = dict(conn.execute("select key, id from catalog.plans where key in ('free', 'pro', 'business')").fetchall())
        with service(conn):
            conn.execute("select public.change_subscription_plan(%s, 'pro')", (org,))
            first = conn.execute("select public.record_subscription_change(%s, %s, %s, 'upgrade', 'evt_u1', 20.00, %s)",
                                 (org, ids["free"], ids["pro"], uid)).fetchone()[0]
            again = conn.execute("select public.record_subscription_change(%s, %s, %s, 'upgrade', 'evt_u1', 20.00, %s)",
                                 (org, ids["free"], ids["pro"], uid)).fetchone()[0]
        assert first == again
        assert conn.execute("select count(*) from billing.subscription_history where organization_id = %s and change_type = 'upgrade'",
                            (org,)).fetchone()[0] == 1
        # Made by record_subscription_change itself: the plan changes, its row carries the event and amount.
        with service(conn):
            made = conn.execute("select public.record_subscription_change(%s, %s, %s, 'upgrade', 'evt_u2', 100.00, %s)",
                                (org, ids["pro"], ids["business"], uid)).fetchone()[0]
        assert conn.execute("select plan_key from billing.subscriptions where organization_id = %s", (org,)).fetchone()[0] == "business"
        assert conn.execute("select change_type, provider_event_id, amount_paid_minor, created_by::text, reported "
                            "from billing.subscription_history where id = %s", (made,)).fetchone() == ("upgrade", "evt_u2", 10000, uid, False)
        with service(conn):
            refused(conn, psycopg.errors.InvalidParameterValue,
                    "select public.record_subscription_change(%s, %s, %s, 'upgrade')", (org, ids["business"], ids["free"]))


# --- reminders look ahead -----------------------------------------------------

def test_claim_reminders_looks_ahead_fifteen_minutes_by_default(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        alice, org = signup(conn, "remind@s.test")
        job = book(conn, alice, org, {"first_name": "Dee", "phone": "+15552220001"})
        soon, later = [str(r[0]) for r in conn.execute("select id from crm.reminders where job_id = %s order by slot", (job["id"],)).fetchall()]
        conn.execute("update crm.reminders set send_at = now() + interval '10 minutes' where id = %s", (soon,))
        conn.execute("update crm.reminders set send_at = now() + interval '20 minutes' where id = %s", (later,))
        with service(conn):
            assert conn.execute("select count(*) from public.claim_reminders('w1', 10, interval '1 minute', interval '0')").fetchone()[0] == 0
            assert [str(r[0]) for r in conn.execute("select reminder_id from public.claim_reminders('w1')").fetchall()] == [soon]
            refused(conn, psycopg.errors.InvalidParameterValue, "select * from public.claim_reminders('w1', 10, interval '1 minute', interval '2 hours')")


# --- scenarios ----------------------------------------------------------------

def test_end_of_month_story_steps_1_to_10(dsn: str) -> None:
    """The billing story of the design documents: upgrade, a month of usage,
    overage fees, credits, the invoice (20 + 20 - 10 = 30), the provider's
    webhook, the invoice paid."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        _, org = org_of(conn, "acme@story.test")
        with service(conn):
            # 1. billing_customers created (the provider's cus_123)
            conn.execute("insert into billing.payment_customers (organization_id, provider, provider_customer_id) "
                         "values (%s, 'stripe', 'cus_123')", (org,))
        # 2. subscriptions created: the provider confirms the Pro plan (20.00).
        assert webhook(conn, "evt_sub", "subscription.updated", {"organization_id": org, "plan_key": "pro", "status": "active",
                                                                   "provider_subscription_id": "sub_123"},
                       datetime.now(timezone.utc))[0][1] == "processed"
        # 3-4. usage during the month, nothing charged: 2000 API calls over the 100000 included.
        with service(conn):
            conn.execute("select public.record_usage(%s, 'api_call', 102000, 'month-usage')", (org,))
            conn.execute("select public.record_usage(%s, 'ai_tokens_used', 5000, 'month-tokens')", (org,))
        assert conn.execute("select count(*) from billing.invoices where organization_id = %s", (org,)).fetchone()[0] == 0
        # 7. the credit ledger: 10.00 of credit.
        with service(conn):
            conn.execute("select * from public.post_credit(%s, 1000, 'USD', 'promo', 'promo-10', 'Ten dollars off')", (org,))
            # 5-6, 8. end of month: usage summarized, overage fees, the invoice generated and finalized.
            this_start, next_start = conn.execute("select start_date, end_date from private.billing_period(%s, now())", (org,)).fetchone()
            inv = str(conn.execute("select public.generate_invoice(%s, %s)", (org, next_start)).fetchone()[0])
            total = conn.execute("select public.finalize_invoice(%s, %s)", (org, inv)).fetchone()[0]
        assert conn.execute("select feature_key, units_over, unit_price_minor, amount_minor from usage.overage_fees "
                            "where organization_id = %s and period_start = %s", (org, this_start)).fetchall() == [
            ("max_api_calls_per_month", 2000, 1, 2000)]
        lines = dict(conn.execute("select kind, sum(amount_minor) from billing.invoice_lines where invoice_id = %s group by kind",
                                  (inv,)).fetchall())
        assert lines == {"subscription": 2000, "usage": 2000, "credit": -1000}
        assert total == 3000 and invoice(conn, inv)["status"] == "open"
        # 9. webhook -> the inbox (stored first, then processed once).
        paid_at = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=31)
        assert webhook(conn, "evt_456", "invoice.paid", {"organization_id": org, "provider_invoice_id": "in_789",
                                                          "metadata": {"invoice_id": inv}, "amount_paid_minor": 3000,
                                                          "currency": "usd"}, paid_at) == [("evt_456", "processed", None)]
        assert conn.execute("select p.status from billing.payment_event_processing p join billing.payment_events e on e.id = p.event_id "
                            "where e.provider_event_id = 'evt_456'").fetchone()[0] == "processed"
        # 10. the invoice is paid, linked to the provider's invoice; the ledger balance is spent.
        row = invoice(conn, inv)
        assert (row["status"], row["total_minor"], row["paid_at"], row["provider_invoice_id"]) == ("paid", 3000, paid_at, "in_789")
        assert conn.execute("select public.credit_balance(%s)", (org,)).fetchone()[0] == 0
        # 10, the other way: the next month's payment fails.
        with service(conn):
            after = conn.execute("select end_date from private.billing_period(%s, %s::date + 1)", (org, next_start)).fetchone()[0]
            inv2 = str(conn.execute("select public.generate_invoice(%s, %s)", (org, after)).fetchone()[0])
            conn.execute("select public.finalize_invoice(%s, %s)", (org, inv2))
        webhook(conn, "evt_457", "invoice.payment_failed", {"organization_id": org, "invoice_id": inv2, "error": "card_declined"},
                paid_at + timedelta(days=31))
        assert conn.execute("select id::text, failed_payment_count from billing.invoices where organization_id = %s "
                            "and status = 'open' and failed_payment_count > 0", (org,)).fetchall() == [(inv2, 1)]
        assert sub_status(conn, org) == "past_due"


def test_subscription_history_use_cases_1_to_4(dsn: str) -> None:
    """The subscription-history document's flow: usage snapshots, an upgrade
    and a cancellation reported by the provider (beside the real change),
    then its four use cases, as written (schema-qualified)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        sam, org = org_of(conn, "sam@uc.test")
        ids = dict(conn.execute("select key, id from catalog.plans where key in ('free', 'pro')").fetchall())
        with service(conn):
            conn.execute("select public.record_usage(%s, 'api_call', 900, 'uc-calls')", (org,))
            conn.execute("SELECT record_organization_usage(%s)", (org,))
            # The provider's upgrade arrives as a webhook (the real change) ...
        webhook(conn, "evt_up", "subscription.updated", {"organization_id": org, "plan_key": "pro"}, datetime.now(timezone.utc))
        with service(conn):
            # ... and the document's flow records it too.
            conn.execute("SELECT record_subscription_change(%s, %s, %s, 'upgrade', 'evt_up', 20.00, %s)", (org, ids["free"], ids["pro"], sam))
            # Record cancellation
            conn.execute("SELECT record_subscription_change(%s, %s, NULL, 'cancelled', 'evt_cancel', NULL, %s)", (org, ids["pro"], sam))
            # Use case 4: the daily job.
            uc4 = conn.execute("SELECT record_organization_usage(id) FROM tenancy.organizations WHERE status = 'active'").fetchall()
        assert len(uc4) == conn.execute("select count(*) from tenancy.organizations where status = 'active'").fetchone()[0]
        with request(conn, sam):
            uc1 = conn.execute("""SELECT * FROM public.organization_usage_summary
                                  WHERE period_start = DATE_TRUNC('month', CURRENT_DATE)::DATE
                                  ORDER BY has_exceeded_limits DESC""").fetchall()
            assert len(uc1) == 1, "use case 1: Sam's month, and no other organization's"
            uc2 = conn.execute("""SELECT organization_name, plan_name FROM public.organization_usage_summary
                                  WHERE api_call_utilization_pct > 80
                                  AND period_start = DATE_TRUNC('month', CURRENT_DATE)::DATE""").fetchall()
            assert uc2 == [], "use case 2: 900 calls of Pro's 100000 is not near the limit"
            uc3 = conn.execute("""SELECT sh.change_type, sh.provider_event_id, sh.amount_paid_minor, op.name as old_plan_name, np.name as new_plan_name
                                  FROM billing.subscription_history sh
                                  LEFT JOIN catalog.plans op ON sh.old_plan_id = op.id
                                  LEFT JOIN catalog.plans np ON sh.new_plan_id = np.id
                                  WHERE sh.organization_id = %s
                                  ORDER BY sh.effective_date DESC, sh.created_at""", (org,)).fetchall()
        names = dict(conn.execute("select key, name from catalog.plans where key in ('free', 'pro')").fetchall())
        assert [r for r in uc3 if r[0] != "created"] == [
            # made by the webhook: its event id; the amount is the provider's to report on the event
            ("upgrade", "evt_up", None, names["free"], names["pro"]),
            ("cancelled", "evt_cancel", None, names["pro"], None)], "use case 3: one row per change"
