"""The CRM's trust model, tried as an attacker would, through PostgREST's
role switch: what an organization records about its client stays its own;
a person is shared only through an email or phone they verified; a planted
person pulls nobody's client in; the answer about an email or phone is the
same whether or not someone else has it; a linked homeowner sees what their
providers share and nothing internal; only the worker holding a lease
reports on it. Each scenario failed on the release before the trust model
(0018_crm_trust)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from test_crm import request, signup


@contextmanager
def service(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """One request of the back end (the service_role key)."""
    with conn.transaction():
        conn.execute("select set_config('request.jwt.claims', %s, true), set_config('role', 'service_role', true)",
                     (json.dumps({"role": "service_role"}),))
        yield conn


def refused(conn: psycopg.Connection, error: type[psycopg.Error], query: str, params: tuple = (), match: str | None = None) -> None:
    """The statement fails with that error, inside a savepoint (the request goes on)."""
    with pytest.raises(error, match=match), conn.transaction():
        conn.execute(query, params)


def confirmed_user(conn: psycopg.Connection, email: str, phone: str | None = None) -> str:
    """A user who signed up and confirmed their email (and phone)."""
    if phone is None:
        return str(conn.execute("insert into auth.users (email, email_confirmed_at) values (%s, now()) returning id", (email,)).fetchone()[0])
    return str(conn.execute("insert into auth.users (email, email_confirmed_at, phone, phone_confirmed_at) values (%s, now(), %s, now()) "
                            "returning id", (email, phone)).fetchone()[0])


def book(conn: psycopg.Connection, uid: str, org: str, client: dict, notes: str = "gate code 4411") -> dict:
    with request(conn, uid):
        return conn.execute(
            "select public.create_job_with_optional_new_client(p_organization_id => %s, p_client => %s, "
            "p_start_at => now() + interval '3 days', p_price_cents => 12000, p_notes => %s)",
            (org, json.dumps(client), notes)).fetchone()[0]["job"]


def record_secrets(conn: psycopg.Connection, uid: str, org: str, client_id: str) -> str:
    """Organization A's internal data on its client: a note, custom fields,
    an issued invoice with a note and a payment. Returns the invoice."""
    with request(conn, uid):
        conn.execute("update crm.org_clients set notes = '[\"internal: bad payer\"]', tags = '{vip}' where id = %s", (client_id,))
        conn.execute("insert into crm.org_client_settings (organization_id, org_client_id, custom_fields) values (%s, %s, %s)",
                     (org, client_id, json.dumps({"alarm_code": "9731"})))
        invoice = str(conn.execute("insert into crm.invoices (organization_id, org_client_id, currency, due_date, notes) "
                                   "values (%s, %s, 'USD', current_date + 10, 'invoice note: disputes') returning id",
                                   (org, client_id)).fetchone()[0])
        conn.execute("insert into crm.invoice_lines (organization_id, invoice_id, description, unit_price_cents) values (%s, %s, 'Visit', 12000)",
                     (org, invoice))
        conn.execute("update crm.invoices set status = 'open' where id = %s", (invoice,))
        conn.execute("insert into crm.payments (organization_id, invoice_id, currency, amount_cents, status) values (%s, %s, 'USD', 2000, 'succeeded')",
                     (org, invoice))
    return invoice


SECRETS = ("bad payer", "4411", "9731", "disputes", "Victim Way", "victor@real.test", "Victor")


def tables_and_export(conn: psycopg.Connection, uid: str) -> str:
    """All the user can read of the CRM's tables, and their data export, as one text."""
    seen = []
    with request(conn, uid):
        for table in ("people", "person_emails", "person_phones", "addresses", "org_clients", "org_client_settings",
                      "jobs", "invoices", "payments", "marketing_consents", "reminders"):
            seen += [json.dumps(r[0]) for r in conn.execute(f"select to_jsonb(t) from crm.{table} t").fetchall()]
        seen.append(json.dumps(conn.execute("select public.export_user_data(%s)", (uid,)).fetchone()[0]))
    return "\n".join(seen)


def everything_visible(conn: psycopg.Connection, uid: str) -> str:
    """tables_and_export, the organizations' own addresses, and the client portal."""
    seen = [tables_and_export(conn, uid)]
    with request(conn, uid):
        seen += [json.dumps(r[0]) for r in conn.execute("select to_jsonb(a) from crm.client_addresses a").fetchall()]
        seen += [json.dumps(r[0]) for r in conn.execute("select to_jsonb(h) from public.my_service_history() h").fetchall()]
    return "\n".join(seen)


def test_a_planted_phone_pulls_no_client_in(dsn: str) -> None:
    """Mallory plants a person with her second email and Victor's phone, and
    verifies that email; organization A then books Victor with his own email
    and that phone. Mallory gets nothing of A's, and A's record is A's."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        mallory, _ = signup(conn, "mallory@evil.test")
        with request(conn, mallory):
            planted = conn.execute("select person_id from public.upsert_person(p_email => 'mal2@evil.test', p_phone => '+15557770001')").fetchone()[0]
        mal2 = confirmed_user(conn, "mal2@evil.test")
        alice, org_a = signup(conn, "alice@a.test")
        job = book(conn, alice, org_a, {"first_name": "Victor", "last_name": "Ictim", "email": "victor@real.test",
                                        "phone": "+15557770001", "address": {"address1": "1 Victim Way"}})
        record_secrets(conn, alice, org_a, job["org_client_id"])
        leaked = [s for s in SECRETS if s in tables_and_export(conn, mal2)]
        assert not leaked, f"the user linked to the planted person reads A's {leaked}"
        client = conn.execute("select person_id, email, phone_e164, first_name from crm.org_clients where id = %s",
                              (job["org_client_id"],)).fetchone()
        assert client[1:] == ("victor@real.test", "+15557770001", "Victor"), "A's record keeps what A typed"
        assert client[0] != planted, "the planted person took A's client"
        # Mallory, as the user linked to the planted person, reaches nothing of A's.
        visible = everything_visible(conn, mal2)
        assert not [s for s in SECRETS if s in visible], visible
        with request(conn, mal2):
            own = conn.execute("select person_id from crm.user_person_links").fetchone()[0]
            assert own != client[0]
            conn.execute("select public.propagate_contact_update(%s, 'Mal', null, 'mal3@evil.test', '+15557770001')", (own,))
            for person in (planted, client[0]):
                refused(conn, psycopg.errors.InsufficientPrivilege, "select public.propagate_contact_update(%s, 'Mal')", (person,))
        assert conn.execute("select first_name, email, phone_e164 from crm.org_clients where id = %s",
                            (job["org_client_id"],)).fetchone() == ("Victor", "victor@real.test", "+15557770001")


def test_a_planted_email_redirects_no_reminder(dsn: str) -> None:
    """Mallory plants Victor's email with her own phone and makes the person
    her client; A books Victor with his real phone: A's client, its
    reminders and the phone A can correct are A's."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        mallory, org_m = signup(conn, "mallory@evil.test")
        with request(conn, mallory):
            planted = conn.execute("select person_id from public.upsert_person('victor@real.test', '+15558880000')").fetchone()[0]
            conn.execute("insert into crm.org_clients (organization_id, person_id) values (%s, %s)", (org_m, planted))
        alice, org_a = signup(conn, "alice@a.test")
        job = book(conn, alice, org_a, {"first_name": "Victor", "email": "victor@real.test", "phone": "+15557770001"})
        conn.execute("update crm.reminders set send_at = now() - interval '1 minute' where job_id = %s", (job["id"],))
        with service(conn):
            phones = {r[0] for r in conn.execute("select phone_e164 from public.claim_reminders('w1', 10) where organization_id = %s",
                                                 (org_a,)).fetchall()}
        assert phones == {"+15557770001"}, "A's reminders go to the phone A typed"
        with request(conn, alice):
            person = conn.execute("select person_id from crm.org_clients where id = %s", (job["org_client_id"],)).fetchone()[0]
            conn.execute("select public.propagate_contact_update(%s, p_phone => '+15557770002')", (person,))
            assert conn.execute("select phone_e164 from crm.org_clients where id = %s", (job["org_client_id"],)).fetchone()[0] == "+15557770002"
        assert conn.execute("select phone_e164 from crm.org_clients where organization_id = %s", (org_m,)).fetchone()[0] == "+15558880000"


def test_no_oracle_and_bounded_keys(dsn: str) -> None:
    """The answer about an email or phone is the same whether another
    organization (or a verified user) has it; a key inserted as a client
    brings only what its caller typed; creating keys is capped (54000,
    nothing written)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        alice, org_a = signup(conn, "alice@a.test")
        book(conn, alice, org_a, {"first_name": "Victor", "email": "victor@real.test", "phone": "+15557770001",
                                  "address": {"address1": "1 Victim Way"}})
        with request(conn, alice):
            person_a = conn.execute("select person_id from crm.org_clients where organization_id = %s", (org_a,)).fetchone()[0]
            conn.execute("select public.set_marketing_consent(%s, 'email', true, %s)", (person_a, org_a))
        confirmed_user(conn, "verified@real.test")
        bob, org_b = signup(conn, "bob@b.test")
        with request(conn, bob):
            answers = [conn.execute("select is_new from public.upsert_person(%s, p_first_name => 'Vic')", (email,)).fetchone()[0]
                       for email in ("victor@real.test", "verified@real.test", "nobody@real.test")]
            assert answers == [True, True, True]
            assert conn.execute("select is_new from public.upsert_person(p_phone => '+15557770001')").fetchone()[0] is True
            key, again = conn.execute("select person_id, is_new from public.upsert_person('victor@real.test')").fetchone()
            assert again is False, "the caller's own key, asked again"
            conn.execute("insert into crm.org_clients (organization_id, person_id) values (%s, %s)", (org_b, key))
            seen = json.dumps([r[0] for r in conn.execute("select to_jsonb(c) from crm.org_clients c").fetchall()]
                              + [r[0] for r in conn.execute("select to_jsonb(c) from crm.marketing_consents c").fetchall()]
                              + [r[0] for r in conn.execute("select to_jsonb(a) from crm.client_addresses a").fetchall()])
            assert "Victim Way" not in seen and "Victor" not in seen and alice not in seen and '"Vic"' in seen
        before = conn.execute("select count(*) from crm.people").fetchone()[0]
        conn.execute("update catalog.limits set value = (select count(*) + 1 from crm.people where created_by = %s) "
                     "where key = 'crm.people.per_user_per_day'", (bob,))
        with request(conn, bob):
            conn.execute("select public.upsert_person('p1@x.test')")
            refused(conn, psycopg.errors.ProgramLimitExceeded, "select public.upsert_person('p2@x.test')", match="crm.people.per_user_per_day")
        assert conn.execute("select count(*) from crm.people").fetchone()[0] == before + 1


def shared_client(conn: psycopg.Connection) -> dict:
    """Carl verified his email; organizations A and B both record him with
    it: one person, two organizations' records."""
    carl = confirmed_user(conn, "carl@client.test")
    alice, org_a = signup(conn, "alice@a.test")
    bob, org_b = signup(conn, "bob@b.test")
    job_a = book(conn, alice, org_a, {"first_name": "Carl", "email": "carl@client.test", "address": {"address1": "7 Oak St"}},
                 notes="dog bites")
    job_b = book(conn, bob, org_b, {"first_name": "Karl", "email": "carl@client.test", "phone": "+15551110000"})
    people = conn.execute("select array_agg(distinct person_id) from crm.org_clients").fetchone()[0]
    assert len(people) == 1
    return {"carl": carl, "alice": alice, "org_a": org_a, "bob": bob, "org_b": org_b, "person": str(people[0]),
            "client_a": job_a["org_client_id"], "client_b": job_b["org_client_id"], "job_a": job_a["id"]}


def test_a_second_provider_changes_nothing_of_the_first(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        w = shared_client(conn)
        record_secrets(conn, w["alice"], w["org_a"], w["client_a"])
        a_before = conn.execute("select to_jsonb(c) - 'updated_at' from crm.org_clients c where id = %s", (w["client_a"],)).fetchone()[0]
        with request(conn, w["bob"]):
            refused(conn, psycopg.errors.InsufficientPrivilege, "select public.add_person_address(%s, '{\"address1\": \"2 Spy Lane\"}')", (w["person"],))
            conn.execute("select public.propagate_contact_update(%s, 'Mallory', p_email => 'carl@client.test')", (w["person"],))
            conn.execute("select public.set_marketing_consent(%s, 'email', true, %s)", (w["person"], w["org_b"]))
            # P0002: A's client is not disclosed
            refused(conn, psycopg.errors.NoDataFound, "select * from public.client_timeline(%s)", (w["client_a"],))
            assert "7 Oak St" not in json.dumps([r[0] for r in conn.execute("select to_jsonb(a) from crm.client_addresses a").fetchall()])
        assert conn.execute("select to_jsonb(c) - 'updated_at' from crm.org_clients c where id = %s", (w["client_a"],)).fetchone()[0] == a_before
        assert conn.execute("select first_name from crm.org_clients where id = %s", (w["client_b"],)).fetchone()[0] == "Mallory"
        # B's opt-in counts for B only; Carl's own opt-in counts for everyone.
        with request(conn, w["alice"]):
            campaign = conn.execute("insert into crm.campaigns (organization_id, channel, name) values (%s, 'email', 'Spring') returning id",
                                    (w["org_a"],)).fetchone()[0]
            assert conn.execute("select public.queue_campaign_sends(%s)", (campaign,)).fetchone()[0] == 0
        with request(conn, w["carl"]):
            conn.execute("select public.set_marketing_consent(%s, 'email', true)", (w["person"],))
        with request(conn, w["alice"]):
            assert conn.execute("select public.queue_campaign_sends(%s)", (campaign,)).fetchone()[0] == 1
        # The consent records: each organization sees its own, never who else recorded one.
        with request(conn, w["alice"]):
            rows = conn.execute("select recorded_by_organization_id, recorded_by from crm.marketing_consents").fetchall()
            assert all(str(org) != w["org_b"] and str(by) != w["bob"] for org, by in rows), rows


def test_the_homeowner_sees_their_history_and_nothing_internal(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        w = shared_client(conn)
        invoice = record_secrets(conn, w["alice"], w["org_a"], w["client_a"])
        with request(conn, w["carl"]):
            history = conn.execute("select organization_id::text, type, id::text, data from public.my_service_history()").fetchall()
            assert {(org, kind) for org, kind, _, _ in history} == {(w["org_a"], "job"), (w["org_a"], "invoice"), (w["org_a"], "payment"),
                                                                    (w["org_b"], "job")}
            assert invoice in {i for _, _, i, _ in history}
            assert conn.execute("select count(*) from crm.people where id = %s", (w["person"],)).fetchone()[0] == 1
            refused(conn, psycopg.errors.InvalidParameterValue, "select * from public.my_service_history(0)")
        visible = everything_visible(conn, w["carl"])
        assert "7 Oak St" in visible, "the job's address is shared with the client"
        for secret in ("bad payer", "9731", "disputes", "dog bites", '"Karl"', "+15551110000"):
            assert secret not in visible, secret
        # A provider sees that its client has an account and changed their
        # contact, never the contact itself (typing an email gets no phone).
        with request(conn, w["alice"]):
            before = conn.execute("select public.client_account(%s)", (w["client_a"],)).fetchone()[0]
        with request(conn, w["carl"]):
            conn.execute("select public.propagate_contact_update(%s, 'Carlos', p_phone => '+15554443322')", (w["person"],))
        with request(conn, w["alice"]):
            account = conn.execute("select public.client_account(%s)", (w["client_a"],)).fetchone()[0]
            assert account["has_account"] is True and account["contact_updated_at"] > before["contact_updated_at"]
            assert "Carlos" not in json.dumps(account) and "4443322" not in json.dumps(account)
            assert conn.execute("select first_name from crm.org_clients where id = %s", (w["client_a"],)).fetchone()[0] == "Carl"
        walk_in = book(conn, w["alice"], w["org_a"], {"first_name": "Walk", "phone": "+15556667777"})
        with request(conn, w["alice"]):
            assert conn.execute("select public.client_account(%s)", (walk_in["org_client_id"],)).fetchone()[0] == \
                {"has_account": False, "linked_since": None, "contact_updated_at": None}
        with request(conn, w["bob"]):
            refused(conn, psycopg.errors.NoDataFound, "select public.client_account(%s)", (w["client_a"],))
        with psycopg.connect(dsn) as anon:
            anon.execute("select set_config('request.jwt.claims', '{\"role\": \"anon\"}', true), set_config('role', 'anon', true)")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                anon.execute("select * from public.my_service_history()")


def test_a_client_moves_with_the_record_its_organization_keeps(dsn: str) -> None:
    """A's client is Carl's while A's record carries his verified email;
    when A changes it to an unverified one, the client gets a key of its
    own (and A's consent record goes along); a later verification ties it."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        w = shared_client(conn)
        with request(conn, w["alice"]):
            conn.execute("select public.set_marketing_consent(%s, 'sms', true, %s)", (w["person"], w["org_a"]))
            conn.execute("update crm.org_clients set email = 'carl.other@client.test' where id = %s", (w["client_a"],))
            moved = conn.execute("select person_id from crm.org_clients where id = %s", (w["client_a"],)).fetchone()[0]
            assert str(moved) != w["person"]
            assert conn.execute("select count(*) from crm.jobs where id = %s and person_id = %s", (w["job_a"], moved)).fetchone()[0] == 1
            assert conn.execute("select opted_in from crm.marketing_consents where person_id = %s and channel = 'sms'", (moved,)).fetchone()[0]
        with service(conn):
            refused(conn, psycopg.errors.CheckViolation, "update crm.org_clients set search_name = 'x' where id = %s", (w["client_a"],))
        with request(conn, w["carl"]):
            assert conn.execute("select count(*) from public.my_service_history() where organization_id = %s", (w["org_a"],)).fetchone()[0] == 0
        conn.execute("update auth.users set email = 'carl.other@client.test', email_confirmed_at = now() where id = %s", (w["carl"],))
        assert str(conn.execute("select person_id from crm.org_clients where id = %s", (w["client_a"],)).fetchone()[0]) == w["person"]


def test_only_the_worker_holding_the_lease_reports(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        alice, org_a = signup(conn, "alice@a.test")
        job = book(conn, alice, org_a, {"first_name": "Dee", "phone": "+15552220000"})
        conn.execute("update crm.reminders set send_at = now() - interval '1 minute' where job_id = %s", (job["id"],))
        first, second = [str(r[0]) for r in conn.execute("select id from crm.reminders where job_id = %s order by slot", (job["id"],)).fetchall()]
        with service(conn):
            refused(conn, psycopg.errors.ObjectNotInPrerequisiteState, "select public.complete_reminder(%s, 'w1')", (first,), match="nobody holds it")
        with service(conn):
            assert len(conn.execute("select * from public.claim_reminders('w1', 10, interval '10 seconds')").fetchall()) == 2
        # w1 is slow: its lease runs out and w2 takes the reminder over.
        conn.execute("update crm.reminders set lease_until = now() - interval '1 second' where id = %s", (first,))
        with service(conn):
            assert [str(r[0]) for r in conn.execute("select reminder_id from public.claim_reminders('w2', 10)").fetchall()] == [first]
        with service(conn):
            refused(conn, psycopg.errors.ObjectNotInPrerequisiteState, "select public.complete_reminder(%s, 'w1')", (first,), match="another worker claimed it")
        with service(conn):
            conn.execute("select public.complete_reminder(%s, 'w2')", (first,))
            conn.execute("select public.complete_reminder(%s, 'w1', 'carrier refused')", (second,))
        assert conn.execute("select array_agg(status order by slot) from crm.reminders where job_id = %s", (job["id"],)).fetchone()[0] == ["sent", "failed"]
        with service(conn):
            refused(conn, psycopg.errors.NoDataFound, "select public.complete_reminder(%s, 'w2')", (first,))
        # The same for campaign sends.
        with request(conn, alice):
            client = conn.execute("select person_id from crm.org_clients where id = %s", (job["org_client_id"],)).fetchone()[0]
            conn.execute("select public.set_marketing_consent(%s, 'sms', true, %s)", (client, org_a))
            campaign = conn.execute("insert into crm.campaigns (organization_id, channel, name) values (%s, 'sms', 'Promo') returning id",
                                    (org_a,)).fetchone()[0]
            conn.execute("select public.queue_campaign_sends(%s)", (campaign,))
        with service(conn):
            send = str(conn.execute("select send_id from public.claim_campaign_sends('w1', 10)").fetchone()[0])
        conn.execute("update crm.campaign_sends set lease_until = now() - interval '1 second' where id = %s", (send,))
        with service(conn):
            refused(conn, psycopg.errors.ObjectNotInPrerequisiteState, "select public.complete_campaign_send(%s, 'w1')", (send,), match="lease ran out")


def linked(conn: psycopg.Connection, uid: str) -> set[str]:
    return {str(r[0]) for r in conn.execute("select person_id from crm.user_person_links where user_id = %s", (uid,)).fetchall()}


def person_of(conn: psycopg.Connection, client_id: str) -> str:
    return str(conn.execute("select person_id from crm.org_clients where id = %s", (client_id,)).fetchone()[0])


def test_a_verification_belongs_to_whoever_holds_the_identifier_now(dsn: str) -> None:
    """A phone number U1 gave up and S confirmed next ties nothing of U1's
    to S; a deleted account's clients get keys of their own; a phone as
    Supabase stores it (no '+') is read as E.164, never as a North
    American number."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        u1 = confirmed_user(conn, "u1@home.test", "+15553330001")
        alice, org_a = signup(conn, "alice@a.test")
        bob, org_b = signup(conn, "bob@b.test")
        both = book(conn, alice, org_a, {"first_name": "U", "email": "u1@home.test", "phone": "+15553330001"})["org_client_id"]
        phone_only = book(conn, bob, org_b, {"first_name": "U", "phone": "+15553330001"})["org_client_id"]
        (p1,) = linked(conn, u1)
        assert person_of(conn, both) == p1 and person_of(conn, phone_only) == p1
        conn.execute("update auth.users set phone = '+15553330002', phone_confirmed_at = now() where id = %s", (u1,))
        assert conn.execute("select verified_at from crm.person_phones where person_id = %s and phone_e164 = '+15553330001'",
                            (p1,)).fetchone()[0] is None, "the number U1 gave up is no longer verified for them"
        assert person_of(conn, both) == p1, "A's record still carries U1's verified email"
        assert person_of(conn, phone_only) != p1, "B's record carries only the number U1 gave up"
        s = confirmed_user(conn, "s@other.test", "+15553330001")
        assert p1 not in linked(conn, s)
        with request(conn, s):
            assert conn.execute("select count(*) from crm.people where id = %s", (p1,)).fetchone()[0] == 0
            assert conn.execute("select count(*) from public.my_service_history() where organization_id = %s", (org_a,)).fetchone()[0] == 0
        # U1 deletes their account: A's client is tied to nobody's account.
        conn.execute("delete from auth.users where id = %s", (u1,))
        assert person_of(conn, both) != p1
        with request(conn, alice):
            assert conn.execute("select public.client_account(%s)", (both,)).fetchone()[0]["has_account"] is False
        # Supabase's phone format: digits without '+'. 4791234567 is +47 91 23 45 67 (Norway).
        oslo = book(conn, alice, org_a, {"first_name": "Ola", "phone": "+4791234567"})["org_client_id"]
        arkansas = book(conn, bob, org_b, {"first_name": "Ark", "phone": "+14791234567"})["org_client_id"]
        ola = confirmed_user(conn, "ola@home.test", "4791234567")
        (p_ola,) = linked(conn, ola)
        assert person_of(conn, oslo) == p_ola and person_of(conn, arkansas) != p_ola


def test_a_client_is_never_attached_to_another_organizations_key(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        alice, org_a = signup(conn, "alice@a.test")
        bob, org_b = signup(conn, "bob@b.test")
        a_client = book(conn, alice, org_a, {"first_name": "Kay", "email": "kay@x.test"})["org_client_id"]
        key = person_of(conn, a_client)
        with request(conn, bob):
            b_client = conn.execute("insert into crm.org_clients (organization_id, person_id, email) values (%s, %s, 'kay@x.test') returning id",
                                    (org_b, key)).fetchone()[0]
        assert person_of(conn, str(b_client)) != key
        # A key of the caller's own, and one of their own organizations' clients, are theirs to use.
        with request(conn, alice):
            org_a2 = str(conn.execute("select public.create_organization('A two', 'a-two')").fetchone()[0])
            again = conn.execute("insert into crm.org_clients (organization_id, person_id) values (%s, %s) returning person_id",
                                 (org_a2, key)).fetchone()[0]
        assert str(again) == key
