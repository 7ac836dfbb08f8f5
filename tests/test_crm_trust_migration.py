"""0018_crm_trust on a database that holds the previous release's CRM rows:
the release before it (read from git) migrates and fills a database through
its own API; this release's migrate maps every row into the trust model,
and its rollback maps them back."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import psycopg

from conftest import ROOT
from tenantdb.engine import Engine
from tenantdb.render import Renderer, Target

TABLES = {  # table: its rows as compared before and after (what 0018 does not change)
    "crm.jobs": "select to_jsonb(t) - 'person_id' - 'updated_at' from crm.jobs t",
    "crm.invoices": "select to_jsonb(t) - 'updated_at' from crm.invoices t",
    "crm.payments": "select to_jsonb(t) - 'updated_at' from crm.payments t",
    "crm.reminders": "select to_jsonb(t) from crm.reminders t",
    "crm.campaign_sends": "select to_jsonb(t) - 'person_id' from crm.campaign_sends t",
    "crm.marketing_consents": "select to_jsonb(t) - 'person_id' from crm.marketing_consents t",
    "crm.user_person_links": "select to_jsonb(t) from crm.user_person_links t",
    "crm.org_clients": "select to_jsonb(t) - 'person_id' - 'updated_at' - 'search_name' - 'search_contact' from crm.org_clients t",
    "crm.person_emails": "select jsonb_build_object('person_id', person_id, 'email', email, 'is_primary', is_primary) from crm.person_emails",
    "crm.person_phones": "select jsonb_build_object('person_id', person_id, 'phone', phone_e164, 'is_primary', is_primary) from crm.person_phones",
    "crm.addresses": "select to_jsonb(t) - 'person_id' from crm.addresses t",
}


def previous_release(into: Path) -> Path:
    """The package's SQL as of the commit before 0018_crm_trust was added."""
    added = subprocess.run(["git", "-C", str(ROOT), "log", "--diff-filter=A", "--format=%H", "--", "migrations/0018_crm_trust.sql"],
                           capture_output=True, text=True, check=True).stdout.split()
    base = f"{added[-1]}^" if added else "HEAD"  # not committed yet: HEAD is the release before
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", base, "migrations", "functions", "policies", "sql", "seeds"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    assert not (into / "migrations" / "0018_crm_trust.sql").exists()
    return into


def after_0017() -> list[str]:
    """The changes of this release after 0017 (0018 and what came later)."""
    ids = [c.id for c in Renderer(Target()).changes()]
    return ids[ids.index("0017_comments") + 1:]


def rows(conn: psycopg.Connection) -> dict[str, list[str]]:
    return {t: sorted(json.dumps(r[0], sort_keys=True) for r in conn.execute(q).fetchall()) for t, q in TABLES.items()}


def as_user(conn: psycopg.Connection, uid: str, query: str, params: tuple = ()) -> object:
    with conn.transaction():
        conn.execute("select set_config('request.jwt.claims', %s, true), set_config('role', 'authenticated', true)",
                     (json.dumps({"sub": uid, "role": "authenticated"}),))
        return conn.execute(query, params).fetchone()[0]


def fill_with_the_previous_release(conn: psycopg.Connection) -> dict[str, str]:
    """Two organizations serving one shared person (an address each booked
    at, consents, a campaign send, reminders, an invoice paid in part), a
    client who became a linked user and later changed their email, and a
    client nobody shares."""
    ids: dict[str, str] = {}
    for name in ("alice", "bob"):
        ids[name] = str(conn.execute("insert into auth.users (email) values (%s) returning id", (f"{name}@org.test",)).fetchone()[0])
        ids[f"org_{name}"] = str(conn.execute("select id from tenancy.organizations where personal_owner_id = %s", (ids[name],)).fetchone()[0])
    client = {"first_name": "John", "last_name": "Doe", "email": "john@example.com", "phone": "+15551234567",
              "address": {"address1": "1 Elm St", "city": "Springfield"}}
    for name in ("alice", "bob"):
        as_user(conn, ids[name], "select public.create_job_with_optional_new_client(%s, p_client => %s, p_start_at => now() + interval '3 days', "
                "p_notes => 'gate 1234')", (ids[f"org_{name}"], json.dumps(client)))
    ids["john"] = str(conn.execute("select person_id from crm.person_emails where email = 'john@example.com'").fetchone()[0])
    as_user(conn, ids["bob"], "select public.add_person_address(%s, '{\"address1\": \"2 Oak Ave\"}')", (ids["john"],))
    conn.execute("select public.set_marketing_consent(%s, 'email', true, %s)", (ids["john"], ids["org_alice"]))
    conn.execute("select public.set_marketing_consent(%s, 'sms', false)", (ids["john"],))
    campaign = as_user(conn, ids["alice"], "insert into crm.campaigns (organization_id, channel, name) values (%s, 'email', 'Spring') returning id",
                       (ids["org_alice"],))
    as_user(conn, ids["alice"], "select public.queue_campaign_sends(%s)", (campaign,))
    client_a = str(conn.execute("select id from crm.org_clients where organization_id = %s", (ids["org_alice"],)).fetchone()[0])
    as_user(conn, ids["alice"], "update crm.org_clients set notes = '[\"pays late\"]' where id = %s returning id", (client_a,))
    invoice = conn.execute("insert into crm.invoices (organization_id, org_client_id, currency, due_date) values (%s, %s, 'USD', current_date + 9) "
                           "returning id", (ids["org_alice"], client_a)).fetchone()[0]
    conn.execute("insert into crm.invoice_lines (organization_id, invoice_id, description, unit_price_cents) values (%s, %s, 'Mowing', 5000)",
                 (ids["org_alice"], invoice))
    conn.execute("update crm.invoices set status = 'open' where id = %s", (invoice,))
    conn.execute("insert into crm.payments (organization_id, invoice_id, currency, amount_cents, status) values (%s, %s, 'USD', 2000, 'succeeded')",
                 (ids["org_alice"], invoice))
    # Jane: a client of Alice's, then a user who confirmed her email, then changed it.
    as_user(conn, ids["alice"], "select public.create_job_with_optional_new_client(%s, p_client => %s, p_start_at => now() + interval '5 days')",
            (ids["org_alice"], json.dumps({"first_name": "Jane", "email": "jane@example.com", "address": {"address1": "3 Pine Rd"}})))
    ids["jane_user"] = str(conn.execute("insert into auth.users (email, email_confirmed_at) values ('jane@example.com', now()) returning id").fetchone()[0])
    ids["jane"] = str(conn.execute("select person_id from crm.user_person_links where user_id = %s", (ids["jane_user"],)).fetchone()[0])
    as_user(conn, ids["jane_user"], "select success from public.propagate_contact_update(%s, p_email => 'jane.new@example.com')", (ids["jane"],))
    # Someone only Bob serves, with no email.
    as_user(conn, ids["bob"], "select public.create_job_with_optional_new_client(%s, p_client => %s, p_start_at => now() + interval '1 day')",
            (ids["org_bob"], json.dumps({"first_name": "Solo", "phone": "+15550009999"})))
    return ids


def test_0018_maps_the_previous_releases_rows_and_its_rollback_maps_them_back(empty_db: str, tmp_path: Path) -> None:
    previous = Engine(empty_db, Renderer(Target(), root=previous_release(tmp_path)), echo=lambda _l: None)
    previous.migrate()
    previous.seed()
    with psycopg.connect(empty_db, autocommit=True) as conn:
        ids = fill_with_the_previous_release(conn)
        before = rows(conn)
        people_before = conn.execute("select count(*) from crm.people").fetchone()[0]
        shared = conn.execute("select p.first_name, p.last_name, p.primary_email, p.primary_phone_e164 from crm.people p where p.id = %s",
                              (ids["john"],)).fetchone()
        jane_client = str(conn.execute("select id from crm.org_clients oc where oc.person_id = %s", (ids["jane"],)).fetchone()[0])
    current = Engine(empty_db, Renderer(Target()), echo=lambda _l: None)
    assert current.migrate() >= 1
    with psycopg.connect(empty_db, autocommit=True) as conn:
        # Each organization's record is the shared record it saw. Nobody
        # verified John: his key stays with the oldest client (Alice's),
        # Bob's client gets a key of its own.
        records = conn.execute("select organization_id::text, person_id::text, first_name, last_name, email, phone_e164 from crm.org_clients "
                               "where email = 'john@example.com' order by 1").fetchall()
        assert [r[2:] for r in records] == [tuple(shared)] * 2 and {r[0] for r in records} == {ids["org_alice"], ids["org_bob"]}
        assert {r[0]: r[1] == ids["john"] for r in records} == {ids["org_alice"]: True, ids["org_bob"]: False}
        # Every address is each serving organization's, under its id; jobs keep theirs.
        addresses = conn.execute("select organization_id::text, address1 from crm.client_addresses order by 1, 2").fetchall()
        assert sorted(addresses) == sorted([(ids["org_alice"], "1 Elm St"), (ids["org_alice"], "1 Elm St"), (ids["org_alice"], "2 Oak Ave"),
                                            (ids["org_alice"], "3 Pine Rd"), (ids["org_bob"], "1 Elm St"), (ids["org_bob"], "1 Elm St"),
                                            (ids["org_bob"], "2 Oak Ave")]), addresses
        assert conn.execute("select count(*) from crm.jobs where address_id is not null").fetchone()[0] == 3
        assert conn.execute("select count(*) from crm.addresses").fetchone()[0] == 0
        # Jane verified jane@ but her record now says jane.new@: Alice's client gets a key of its own.
        assert conn.execute("select verified_at is not null from crm.person_emails where email = 'jane@example.com'").fetchone()[0]
        assert str(conn.execute("select person_id from crm.org_clients where id = %s", (jane_client,)).fetchone()[0]) != ids["jane"]
        assert conn.execute("select count(*) from crm.people").fetchone()[0] == people_before + 2
        after = rows(conn)
        for table in ("crm.jobs", "crm.invoices", "crm.payments", "crm.reminders", "crm.campaign_sends",
                      "crm.user_person_links", "crm.person_emails", "crm.person_phones"):
            assert after[table] == before[table], table
        assert set(before["crm.marketing_consents"]) <= set(after["crm.marketing_consents"])
        assert [json.loads(r) for r in after["crm.org_clients"]] and len(after["crm.org_clients"]) == len(before["crm.org_clients"])
        assert conn.execute("select count(*) from public.search_clients('john', %s)", (ids["org_alice"],)).fetchone()[0] == 1
    assert current.rollback(to="0017_comments", allow_data_loss=True) == len(after_0017())
    with psycopg.connect(empty_db, autocommit=True) as conn:
        back = rows(conn)
        for table in TABLES:
            assert back[table] == before[table], table
        assert conn.execute("select p.first_name, p.last_name, p.primary_email, p.primary_phone_e164 from crm.people p where p.id = %s",
                            (ids["john"],)).fetchone() == shared
        # John's addresses are his again (Jane's went with the key her client was given).
        assert conn.execute("select count(*) from crm.addresses where person_id = %s", (ids["john"],)).fetchone()[0] == 3
    assert current.migrate() >= 1, "0018 applies again after its rollback"


def test_0018_rolls_back_what_the_trust_model_allows_and_the_old_model_did_not(empty_db: str, tmp_path: Path) -> None:
    """After the upgrade two organizations record the same (unverified)
    email and phone for clients of their own: the old model has one person
    per email, and the rollback keeps one of each, the oldest."""
    previous = Engine(empty_db, Renderer(Target(), root=previous_release(tmp_path)), echo=lambda _l: None)
    previous.migrate()
    previous.seed()
    current = Engine(empty_db, Renderer(Target()), echo=lambda _l: None)
    current.migrate()
    with psycopg.connect(empty_db, autocommit=True) as conn:
        orgs = []
        for name in ("ann", "ben"):
            uid = str(conn.execute("insert into auth.users (email) values (%s) returning id", (f"{name}@org.test",)).fetchone()[0])
            org = str(conn.execute("select id from tenancy.organizations where personal_owner_id = %s", (uid,)).fetchone()[0])
            as_user(conn, uid, "select public.create_job_with_optional_new_client(%s, p_client => %s, p_start_at => now() + interval '1 day')",
                    (org, json.dumps({"first_name": name, "email": "dup@x.test", "phone": "+15550004444", "address": {"address1": "1 Same St"}})))
            orgs.append(org)
        assert conn.execute("select count(distinct person_id) from crm.org_clients where email = 'dup@x.test'").fetchone()[0] == 2
    assert current.rollback(to="0017_comments", allow_data_loss=True) == len(after_0017())
    with psycopg.connect(empty_db, autocommit=True) as conn:
        assert conn.execute("select count(*) from crm.person_emails where email = 'dup@x.test'").fetchone()[0] == 1
        assert conn.execute("select count(*) from crm.person_phones where phone_e164 = '+15550004444'").fetchone()[0] == 1
        assert conn.execute("select count(*) from crm.org_clients").fetchone()[0] == 2
        assert conn.execute("select count(*) from crm.jobs j join crm.addresses a on a.person_id = j.person_id and a.id = j.address_id").fetchone()[0] == 2
