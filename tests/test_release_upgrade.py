"""This release's upgrade on a database that holds the previous release's
data: 0020_settlement, 0021_meter_aggregations (the default meters get the
aggregation their names mean, and their counters are recomputed from the
events), 0022_seats and 0023_usage_ingest (the events' keys move from a
register row per event to each partition's unique index).

The release before it (read from git) migrates and fills a database
through its own functions: organizations with members, usage of every
default meter in this and the previous month (storage reports that arrive
late, active-user events with and without a user), projects, a billing
calendar, invoices and credit, a subscription history with a cancellation.
This release's migrate converts it; every expected value is computed here
from what was loaded. Then a rollback to the previous release and a
migrate again, and a rollback of 0023 alone.
"""

from __future__ import annotations

import calendar
import json
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest

from conftest import ROOT
from tenantdb import verify
from tenantdb.engine import Engine
from tenantdb.render import Renderer, Target

PREVIOUS = "0019_access_per_membership"  # the last change of the previous release
FIRST_NEW = "0020_settlement"
CLI = [sys.executable, str(ROOT / "cli.py")]
HISTORY = "select id::text, change_type, old_plan_key, new_plan_key, new_status from billing.subscription_history"


def previous_release(into: Path) -> Path:
    """The package's SQL as of the commit before this release's first change."""
    added = subprocess.run(["git", "-C", str(ROOT), "log", "--diff-filter=A", "--format=%H", "--", f"migrations/{FIRST_NEW}.sql"],
                           capture_output=True, text=True, check=True).stdout.split()
    base = f"{added[-1]}^" if added else "HEAD"
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", base, "migrations", "functions", "policies", "sql", "seeds"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    assert not (into / "migrations" / f"{FIRST_NEW}.sql").exists()
    assert (into / "migrations" / f"{PREVIOUS}.sql").exists()
    return into


@dataclass
class Org:
    id: str
    calendar: tuple[str, int] | None = None  # (time_zone, anchor_day) of its billing.settings


@dataclass
class Event:
    org: str
    meter: str
    quantity: int
    key: str
    at: datetime
    metadata: dict
    actor: str | None  # the signed-in user recording it (None: the back end)
    id: str = ""


@dataclass
class Loaded:
    orgs: dict[str, Org] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)  # in arrival order
    now: datetime | None = None


def period_of(org: Org, at: datetime) -> date:
    """The billing period an instant falls in, computed here: the UTC month,
    or the organization's anchor day (clamped to the month's last day) at
    midnight in its time zone."""
    if org.calendar is None:
        utc = at.astimezone(timezone.utc)
        return date(utc.year, utc.month, 1)
    tz, anchor = org.calendar
    local = at.astimezone(ZoneInfo(tz)).date()

    def start(y: int, m: int) -> date:
        return date(y, m, min(anchor, calendar.monthrange(y, m)[1]))

    here = start(local.year, local.month)
    if local >= here:
        return here
    y, m = (local.year, local.month - 1) if local.month > 1 else (local.year - 1, 12)
    return start(y, m)


def as_user(conn: psycopg.Connection, uid: str | None, query: str, params: tuple = ()) -> object:
    """One statement as PostgREST runs it for a signed-in user (uid), or as
    the back end's trusted session (None)."""
    with conn.transaction():
        if uid is not None:
            conn.execute("select set_config('request.jwt.claims', %s, true), set_config('role', 'authenticated', true)",
                         (json.dumps({"sub": uid, "role": "authenticated"}),))
        return conn.execute(query, params).fetchone()


def record(conn: psycopg.Connection, loaded: Loaded, org: str, meter: str, quantity: int, key: str, at: datetime,
           metadata: dict | None = None, actor: str | None = None) -> Event:
    event = Event(org, meter, quantity, key, at, metadata or {}, actor)
    row = as_user(conn, actor, "select event_id, duplicate from public.record_usage(%s, %s, %s, %s, %s, %s)",
                  (org, meter, quantity, key, at, json.dumps(event.metadata)))
    assert row[1] is False, key
    event.id = str(row[0])
    loaded.events.append(event)
    return event


def fill_with_the_previous_release(conn: psycopg.Connection) -> Loaded:
    """Three organizations: acme (UTC calendar, pro, three members, every
    meter in both months, projects, an invoice paid partly by credit),
    globex (a billing calendar: the 10th in Pacific/Auckland; storage
    reported last month only), initech (canceled)."""
    loaded = Loaded()
    now = conn.execute("select now()").fetchone()[0].astimezone(timezone.utc)
    loaded.now = now
    month = datetime(now.year, now.month, 1, tzinfo=timezone.utc)
    prev = (month - timedelta(days=1)).replace(day=1)

    def this_month(fraction: float) -> datetime:  # an instant between the month's start and now
        return month + (now - month) * fraction

    def last_month(day: int, hour: int = 12) -> datetime:
        return prev.replace(day=day, hour=hour)

    for name in ("alice", "bob", "carol", "dave", "erin"):
        loaded.users[name] = str(conn.execute("insert into auth.users (email) values (%s) returning id", (f"{name}@upgrade.test",)).fetchone()[0])
    u = loaded.users
    for slug, owner in (("acme", "alice"), ("globex", "dave"), ("initech", "erin")):
        org = as_user(conn, u[owner], "select public.create_organization(%s, %s)", (slug.title(), slug))[0]
        loaded.orgs[slug] = Org(str(org))
    acme, globex, initech = (loaded.orgs[k].id for k in ("acme", "globex", "initech"))
    # Members: the back end adds bob and carol to acme (the previous release has no seat gate).
    for name in ("bob", "carol"):
        conn.execute("insert into tenancy.memberships (organization_id, user_id, role_key) values (%s, %s, 'tenant_member')", (acme, u[name]))
    # Plans and their history: acme moves to pro, globex to business, initech is canceled now.
    conn.execute("select public.change_subscription_plan(%s, 'pro')", (acme,))
    conn.execute("select public.change_subscription_plan(%s, 'business')", (globex,))
    conn.execute("select public.cancel_subscription(%s, false)", (initech,))
    # globex bills on the 10th, in Auckland's time.
    conn.execute("insert into billing.settings (organization_id, time_zone, anchor_day) values (%s, 'Pacific/Auckland', 10)", (globex,))
    loaded.orgs["globex"].calendar = ("Pacific/Auckland", 10)

    for slug, org in (("acme", acme), ("globex", globex)):
        owner = u["alice"] if slug == "acme" else u["dave"]
        # record_created: records made, last month and this month (a batch too).
        record(conn, loaded, org, "record_created", 5, f"{slug}-rec-1", last_month(3))
        record(conn, loaded, org, "record_created", 7, f"{slug}-rec-2", last_month(21), actor=owner)
        record(conn, loaded, org, "max_records", 3, f"{slug}-rec-3", this_month(0.2))  # by its feature's key
        batch = [{"meter_key": "record_created", "quantity": 4, "idempotency_key": f"{slug}-rec-4", "occurred_at": this_month(0.5).isoformat()},
                 {"meter_key": "api_call", "quantity": 40, "idempotency_key": f"{slug}-api-batch", "occurred_at": this_month(0.5).isoformat()}]
        rows = conn.execute("select item, event_id, duplicate from public.record_usage_batch(%s, %s) order by item", (org, json.dumps(batch))).fetchall()
        assert [r[2] for r in rows] == [False, False]
        for item, row in zip(batch, rows):
            loaded.events.append(Event(org, item["meter_key"], item["quantity"], item["idempotency_key"],
                                       datetime.fromisoformat(item["occurred_at"]), {}, None, str(row[1])))
        # late: a record of last month arrives now
        record(conn, loaded, org, "record_created", 2, f"{slug}-rec-late", last_month(25))
        # api_call: a plain sum, untouched by the upgrade
        record(conn, loaded, org, "api_call", 100, f"{slug}-api-1", last_month(4))
        record(conn, loaded, org, "api_calls", 25, f"{slug}-api-2", this_month(0.3), actor=owner)  # by its alias
    # storage_used: gauge reports, some arriving after later ones.
    record(conn, loaded, acme, "storage_used", 4, "acme-st-1", last_month(3))
    record(conn, loaded, acme, "storage_used", 6, "acme-st-2", last_month(20))
    record(conn, loaded, acme, "storage_used", 9, "acme-st-late", last_month(10))  # late: 6 stays last month's value
    record(conn, loaded, acme, "storage_used", 3, "acme-st-3", this_month(0.1))
    record(conn, loaded, acme, "storage_used", 5, "acme-st-4", this_month(0.6), actor=u["alice"])
    record(conn, loaded, acme, "storage_used", 8, "acme-st-late-2", this_month(0.4))  # late: 5 stays the value
    record(conn, loaded, globex, "storage_used", 2, "globex-st-1", last_month(2))
    record(conn, loaded, globex, "storage_used", 7, "globex-st-2", last_month(4))
    # user_active: named users (metadata), signed-in users, and counts without a user.
    record(conn, loaded, acme, "user_active", 1, "acme-mau-1", last_month(5), {"user_id": "u-1"})
    record(conn, loaded, acme, "user_active", 1, "acme-mau-2", last_month(6), {"user_id": "u-3"})
    record(conn, loaded, acme, "user_active", 1, "acme-mau-3", this_month(0.1), {"user_id": "u-1"})
    record(conn, loaded, acme, "user_active", 1, "acme-mau-4", this_month(0.2), {"user_id": "u-1"})
    record(conn, loaded, acme, "user_active", 1, "acme-mau-5", this_month(0.3), {"user_id": "u-2"})
    record(conn, loaded, acme, "user_active", 1, "acme-mau-6", this_month(0.4), actor=u["bob"])
    record(conn, loaded, acme, "user_active", 1, "acme-mau-7", this_month(0.5), actor=u["bob"])
    record(conn, loaded, acme, "user_active", 1, "acme-mau-8", this_month(0.6), {"user_id": u["bob"]})  # bob again, named
    record(conn, loaded, acme, "user_active", 1, "acme-mau-9", this_month(0.7), actor=u["carol"])
    record(conn, loaded, acme, "user_active", 3, "acme-mau-count", this_month(0.8))  # a count, without a user
    record(conn, loaded, acme, "user_active", 2, "acme-mau-count-old", last_month(7))
    record(conn, loaded, globex, "user_active", 1, "globex-mau-1", this_month(0.3), {"user_id": "g-1"})
    record(conn, loaded, globex, "user_active", 4, "globex-mau-count", this_month(0.4))
    # Projects: a live count kept by app.projects' trigger; one deleted.
    projects = [as_user(conn, u["alice"], "insert into app.projects (organization_id, title) values (%s, %s) returning id", (acme, t))[0]
                for t in ("one", "two", "three")]
    as_user(conn, u["alice"], "delete from app.projects where id = %s returning id", (projects[0],))
    # Credit and an invoice: a top-up, the pro invoice of this period, finalized (the credit applied), paid.
    conn.execute("select * from public.post_credit(%s, 500, 'USD', 'topup', 'acme-topup-1', 'Top-up')", (acme,))
    invoice = conn.execute("select public.generate_invoice(%s, %s)", (acme, month.date())).fetchone()[0]
    conn.execute("select public.finalize_invoice(%s, %s)", (acme, invoice))
    conn.execute("select public.set_invoice_status(%s, %s, 'paid')", (acme, invoice))
    return loaded


# -- what the upgrade must produce, computed from the loaded events ----------

def expected(loaded: Loaded, events: list[Event]) -> dict:
    """Per (organization, meter, period): the counter the new aggregation
    means; per organization: records' live total and the distinct users."""
    orgs = {o.id: o for o in loaded.orgs.values()}
    meter_of = {"max_records": "record_created", "api_calls": "api_call"}
    latest: dict[tuple, tuple[datetime, int]] = {}
    users: dict[tuple, set[str]] = defaultdict(set)
    counts: dict[tuple, int] = defaultdict(int)
    sums: dict[tuple, int] = defaultdict(int)
    records: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        meter = meter_of.get(e.meter, e.meter)
        p = period_of(orgs[e.org], e.at)
        if meter == "storage_used":
            if (e.org, p) not in latest or e.at >= latest[(e.org, p)][0]:  # a tie goes to the later arrival
                latest[(e.org, p)] = (e.at, e.quantity)
        elif meter == "user_active":
            who = e.metadata.get("user_id") or e.actor
            if who:
                users[(e.org, p)].add(str(who))
            else:
                counts[(e.org, p)] += e.quantity
        elif meter == "record_created":
            records[e.org].append(e)
        elif meter == "api_call":
            sums[(e.org, p)] += e.quantity
    highest: dict[tuple, int] = {}
    live: dict[str, int] = {}
    for org, evs in records.items():
        total = 0
        for e in sorted(evs, key=lambda e: e.at):  # the total as it stood after each event, in time order
            total += e.quantity
            p = period_of(orgs[org], e.at)
            highest[(org, p)] = max(highest.get((org, p), total), total)
        live[org] = total
    mau = {k: len(users.get(k, ())) + counts.get(k, 0) for k in set(users) | set(counts)}
    return {"latest": latest, "users": users, "mau": mau, "highest": highest, "live": live, "sums": sums}


def check_converted(conn: psycopg.Connection, loaded: Loaded, events: list[Event]) -> None:
    want = expected(loaded, events)
    meters = {r[0]: r[1:] for r in conn.execute(
        "select key, aggregation, recurring, field_name from catalog.meters "
        "where key in ('record_created', 'storage_used', 'user_active', 'api_call', 'projects')").fetchall()}
    assert meters == {"record_created": ("sum", True, None), "storage_used": ("latest", False, None),
                      "user_active": ("unique_count", False, "user_id"), "api_call": ("sum", False, None),
                      "projects": ("live_count", False, None)}

    def counter(meter: str, how: str = "sum") -> dict:
        return {(str(o), p): q for o, p, q in conn.execute(
            f"select organization_id, period_start, {how}(quantity) from usage.counters where meter_key = %s group by 1, 2", (meter,)).fetchall()}

    assert counter("storage_used") == {k: v for k, (_at, v) in want["latest"].items()}
    assert {(str(o), p): at for o, p, at in conn.execute(
        "select organization_id, period_start, last_at from usage.counters where meter_key = 'storage_used'").fetchall()} \
        == {k: at for k, (at, _v) in want["latest"].items()}
    assert counter("user_active") == want["mau"]
    seen = defaultdict(set)
    for o, p, v in conn.execute("select organization_id, period_start, value from usage.unique_values where meter_key = 'user_active'").fetchall():
        seen[(str(o), p)].add(v)
    assert seen == want["users"]
    assert counter("record_created", "max") == want["highest"]
    assert {str(o): q for o, q in conn.execute(
        "select organization_id, quantity from usage.live_counts where meter_key = 'record_created'").fetchall()} == want["live"]
    assert counter("api_call") == want["sums"]
    # projects: untouched (live count 2: three made, one deleted)
    acme = loaded.orgs["acme"].id
    assert conn.execute("select quantity from usage.live_counts where organization_id = %s and meter_key = 'projects'", (acme,)).fetchone()[0] == 2

    # The gate: check_feature_access, as each organization's owner.
    orgs = loaded.orgs
    for slug, owner in (("acme", "alice"), ("globex", "dave")):
        org = orgs[slug]
        current = period_of(org, datetime.now(timezone.utc))
        reported = [p for (o, p) in want["latest"] if o == org.id and p <= current]
        storage = want["latest"][(org.id, max(reported))][1] if reported else 0  # carried over from the last report
        for feature, used in (("max_storage_gb", storage), ("max_mau", want["mau"].get((org.id, current), 0)),
                              ("max_records", want["live"].get(org.id, 0))):
            access = as_user(conn, loaded.users[owner], "select public.check_feature_access(%s, %s, %s)",
                             (loaded.users[owner], feature, org.id))[0]
            assert access["used"] == used, (slug, feature, access)


def check_replays(conn: psycopg.Connection, loaded: Loaded, events: list[Event]) -> None:
    """Every accepted key is a replay: the same call returns duplicate =
    true and the first event's id, and writes nothing; a key of last month
    also when replayed with this month's time."""
    count = conn.execute("select count(*) from usage.events").fetchone()[0]
    for e in events:
        # A gauge reading (storage) is the back end's to report since this
        # release: a member's replay of one is refused, the back end's is a
        # replay.
        if e.meter == "storage_used" and e.actor is not None:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                as_user(conn, e.actor, "select event_id, duplicate from public.record_usage(%s, %s, %s, %s, %s, %s)",
                        (e.org, e.meter, e.quantity, e.key, e.at, json.dumps(e.metadata)))
        actor = None if e.meter == "storage_used" else e.actor
        row = as_user(conn, actor, "select event_id, duplicate from public.record_usage(%s, %s, %s, %s, %s, %s)",
                      (e.org, e.meter, e.quantity, e.key, e.at, json.dumps(e.metadata)))
        assert (str(row[0]), row[1]) == (e.id, True), e.key
    # The active-user counts recorded without a user (refused now for a new
    # key) replay in a batch too.
    for e in events:
        if e.meter == "user_active" and not e.metadata and e.actor is None:
            item = {"meter_key": e.meter, "quantity": e.quantity, "idempotency_key": e.key, "occurred_at": e.at.isoformat()}
            rows = conn.execute("select event_id, duplicate from public.record_usage_batch(%s, %s)", (e.org, json.dumps([item]))).fetchall()
            assert [(str(r[0]), r[1]) for r in rows] == [(e.id, True)], e.key
    month = datetime(loaded.now.year, loaded.now.month, 1, tzinfo=timezone.utc)
    old = [e for e in events if e.at < month and e.meter == "api_call"]
    assert old
    for e in old:
        row = as_user(conn, e.actor, "select event_id, duplicate from public.record_usage(%s, 'api_call', 1, %s)", (e.org, e.key))
        assert (str(row[0]), row[1]) == (e.id, True), e.key
    assert conn.execute("select count(*) from usage.events").fetchone()[0] == count


def partition_key_indexes(conn: psycopg.Connection) -> dict[str, bool]:
    """Each partition of usage.events: whether it holds a unique index on
    exactly (organization_id, idempotency_key)."""
    return dict(conn.execute("""
        select c.relname::text, exists (
                 select from pg_index x
                  where x.indrelid = c.oid and x.indisunique and x.indisvalid
                    and (select array_agg(a.attname::text order by k.ord)
                           from unnest(x.indkey) with ordinality k (attnum, ord)
                           join pg_attribute a on a.attrelid = c.oid and a.attnum = k.attnum)
                        = array['organization_id', 'idempotency_key'])
          from pg_inherits i join pg_class c on c.oid = i.inhrelid
         where i.inhparent = 'usage.events'::regclass""").fetchall())


def check_verify(engine: Engine, dsn: str) -> None:
    found = verify.problems(engine)
    assert found == [], "\n".join(f"{p.check} {p.object}: {p.detail}" for p in found)
    done = subprocess.run(CLI + ["--dsn", dsn, "verify"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_release_upgrades_a_database_of_the_previous_release_and_goes_back(empty_db: str, tmp_path: Path) -> None:
    previous = Engine(empty_db, Renderer(Target(), root=previous_release(tmp_path)), echo=lambda _l: None)
    previous.migrate()
    previous.seed()
    assert previous.status().applied[-1] == PREVIOUS
    with psycopg.connect(empty_db, autocommit=True) as conn:
        loaded = fill_with_the_previous_release(conn)
        keys_before = {(str(o), k): str(e) for o, k, e in conn.execute(
            "select organization_id, idempotency_key, event_id from usage.idempotency_keys").fetchall()}
        assert {(e.org, e.key): e.id for e in loaded.events} == {k: v for k, v in keys_before.items() if not k[1].startswith("app.projects:")}
        history = set(conn.execute(HISTORY).fetchall())
        assert {r[1] for r in history} >= {"created", "upgrade", "cancelled"}, history
        canceled, status = conn.execute("select id, status from billing.subscriptions where organization_id = %s",
                                        (loaded.orgs["initech"].id,)).fetchone()
        ledger = conn.execute("select sum(amount_minor), count(*) from billing.credit_ledger").fetchone()
        invoices = conn.execute("select id, status, total_minor from billing.invoices order by id").fetchall()
        assert status == "canceled" and ledger[1] >= 1 and invoices

    # -- the upgrade, as operations.md says: migrate, seed, verify ---------
    current = Engine(empty_db, Renderer(Target()), echo=lambda _l: None)
    assert current.migrate() >= 4
    current.seed()
    with psycopg.connect(empty_db, autocommit=True) as conn:
        check_converted(conn, loaded, loaded.events)
        check_replays(conn, loaded, loaded.events)
        assert conn.execute("select count(*) from usage.idempotency_keys").fetchone()[0] == len(keys_before)
        indexes = partition_key_indexes(conn)
        assert indexes and all(indexes.values()), indexes
        # The rest of the previous release's billing rows are as they were.
        # (tenantdb seed starts the free plan for initech, left without a live
        # subscription: what every release's seed does; its canceled one stays.)
        assert history <= set(conn.execute(HISTORY).fetchall())
        assert conn.execute("select sum(amount_minor), count(*) from billing.credit_ledger").fetchone() == ledger
        assert conn.execute("select id, status, total_minor from billing.invoices order by id").fetchall() == invoices
        assert conn.execute("select status from billing.subscriptions where id = %s", (canceled,)).fetchone()[0] == "canceled"
        # Usage after the upgrade, as the new aggregations take it: a
        # storage report of 0, a new user, records given back.
        acme = loaded.orgs["acme"].id
        now = conn.execute("select now()").fetchone()[0]
        after = [record(conn, loaded, acme, "storage_used", 0, "acme-st-after", now),
                 record(conn, loaded, acme, "user_active", 1, "acme-mau-after", now, {"user_id": "u-9"}),
                 record(conn, loaded, acme, "record_created", 10, "acme-rec-after", now),
                 record(conn, loaded, acme, "record_created", -15, "acme-rec-back", now)]
        check_converted(conn, loaded, loaded.events)
    check_verify(current, empty_db)

    # -- back to the previous release, and up again ------------------------
    assert current.rollback(to=PREVIOUS, allow_data_loss=True) == 4
    with psycopg.connect(empty_db, autocommit=True) as conn:
        registered = {(str(o), k): str(e) for o, k, e in conn.execute(
            "select organization_id, idempotency_key, event_id from usage.idempotency_keys").fetchall()}
        assert registered == {**keys_before, **{(e.org, e.key): e.id for e in after}}
    assert current.migrate() == 4
    with psycopg.connect(empty_db, autocommit=True) as conn:
        check_converted(conn, loaded, loaded.events)
        check_replays(conn, loaded, loaded.events)
        indexes = partition_key_indexes(conn)
        assert indexes and all(indexes.values()), indexes
    check_verify(current, empty_db)

    # -- 0023 alone: its rollback registers every key accepted since -------
    assert current.rollback(to="0022_seats", allow_data_loss=True) == 1
    with psycopg.connect(empty_db, autocommit=True) as conn:
        events = {(str(o), k): str(i) for o, k, i in conn.execute("select organization_id, idempotency_key, id from usage.events").fetchall()}
        registered = {(str(o), k): str(e) for o, k, e in conn.execute(
            "select organization_id, idempotency_key, event_id from usage.idempotency_keys").fetchall()}
        assert registered == events
        assert not any(partition_key_indexes(conn).values())
        check_replays(conn, loaded, loaded.events)
    assert current.migrate() == 1
    check_verify(current, empty_db)
