"""examples/: the Python examples run end to end against a fresh database
(through examples/python/run_all.py, the runner a developer uses) and leave
the effects they claim; every supabase.rpc call of the
supabase-js examples names a function of the API schema with its exact
parameter names, and runs as PostgREST would run it (the JSON body typed by
the function's parameters, in a transaction with the role switch and the
JWT claims). No PostgREST and no npm are needed."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from conftest import ROOT
from tenantdb import client

EXAMPLES = ROOT / "examples"
PY = EXAMPLES / "python"
JS = EXAMPLES / "supabase-js"
API = "public"  # the API schema the test databases are migrated with (conftest: Target())

# The six calls of issue 11, each shown in both forms.
SIX = {"create_organization", "invite_member", "accept_invitation", "check_feature_access", "record_usage",
       "ingest_payment_event"}


def example(name: str):
    """Import an example module (examples/python is their import root)."""
    if str(PY) not in sys.path:
        sys.path.insert(0, str(PY))
    return importlib.import_module(name)


def run_example(name: str, dsn: str) -> dict:
    """Run examples/python/<name>.py DSN as a user would, through the runner's
    run_one (a new process; this checkout's tenantdb); its last line is a JSON summary."""
    result = example("run_all").run_one(name, dsn)
    assert result.ok, f"{name}.py failed:\n{result.said}\n{result.error}"
    return result.summary


def one(conn: psycopg.Connection, query: str, params: tuple = ()):
    return conn.execute(query, params).fetchone()


# --- what the database must hold after each Python example -------------------

def live_plan(conn: psycopg.Connection, org: str) -> str:
    return one(conn, "select plan_key from billing.subscriptions where organization_id = %s and status <> 'canceled'", (org,))[0]


def catalog_limit(conn: psycopg.Connection, plan: str, feature: str) -> int:
    return one(conn, "select limit_value from catalog.plan_features where plan_key = %s and feature_key = %s", (plan, feature))[0]


def memberships(conn: psycopg.Connection, org: str) -> dict[str, str]:
    rows = conn.execute("select user_id, role_key from tenancy.memberships where organization_id = %s and status = 'active'",
                        (org,)).fetchall()
    return {str(u): r for u, r in rows}


def invoices_in_db(conn: psycopg.Connection, org: str) -> list[tuple]:
    return conn.execute("select id::text, status, total_minor, period_start::text from billing.invoices "
                        "where organization_id = %s order by period_start desc", (org,)).fetchall()


def listed(invoices: list[dict]) -> list[tuple]:
    return [(i["id"], i["status"], i["total_minor"], i["period_start"]) for i in invoices]


def check_create_organization(conn: psycopg.Connection, s: dict) -> None:
    org = one(conn, "select slug, is_personal from tenancy.organizations where id = %s", (s["organization_id"],))
    assert org == (s["slug"], False)
    assert memberships(conn, s["organization_id"]) == {s["user_id"]: "tenant_owner"}


def check_invitations(conn: psycopg.Connection, s: dict) -> None:
    accepted = one(conn, "select accepted_by::text, accepted_at is not null, revoked_at is null from tenancy.invitations "
                         "where organization_id = %s and id = %s", (s["organization_id"], s["invitation_id"]))
    assert accepted == (s["member_id"], True, True)
    assert s["joined"] == s["organization_id"]
    assert memberships(conn, s["organization_id"]) == {s["owner_id"]: "tenant_owner", s["member_id"]: "tenant_member"}
    assert live_plan(conn, s["organization_id"]) == s["plan_key"]  # the plan with seats it moved to first


def check_feature_access(conn: psycopg.Connection, s: dict) -> None:
    access = s["access"]
    assert live_plan(conn, s["organization_id"]) == "free"
    assert access["plan"] == "free" and access["feature"] == "max_api_calls_per_month"
    assert access["limit"] == catalog_limit(conn, "free", "max_api_calls_per_month")
    assert access["used"] == 0 and access["remaining"] == access["limit"] and access["allowed"] is True


def usage_events(conn: psycopg.Connection, org: str, key: str) -> list[tuple]:
    return conn.execute("select id::text, meter_key, quantity from usage.events where organization_id = %s and idempotency_key = %s",
                        (org, key)).fetchall()


def counted(conn: psycopg.Connection, org: str, meter: str) -> int:
    return one(conn, "select coalesce(sum(quantity), 0) from usage.counters where organization_id = %s and meter_key = %s",
               (org, meter))[0]


def check_record_usage(conn: psycopg.Connection, s: dict) -> None:
    org = s["organization_id"]
    assert usage_events(conn, org, s["idempotency_key"]) == [(s["first"][0], s["meter_key"], s["quantity"])]
    assert counted(conn, org, s["meter_key"]) == s["quantity"]  # the retry added nothing
    assert s["first"][1] is False and s["retry"] == [s["first"][0], True]


def payment_events(conn: psycopg.Connection, provider: str, event_id: str) -> list[tuple]:
    return conn.execute("select e.id::text, e.event_type, e.payload ->> 'organization_id', p.status from billing.payment_events e "
                        "join billing.payment_event_processing p on p.event_id = e.id "
                        "where e.provider = %s and e.provider_event_id = %s", (provider, event_id)).fetchall()


def check_payment_webhook(conn: psycopg.Connection, s: dict) -> None:
    stored = payment_events(conn, s["provider"], s["provider_event_id"])
    assert stored == [(s["first"][0], "subscription.updated", s["organization_id"], "processed")]
    assert s["first"][1] is False and s["redelivery"] == [s["first"][0], True]
    assert live_plan(conn, s["organization_id"]) == s["plan_key"]


def check_invoices(conn: psycopg.Connection, s: dict) -> None:
    in_db = invoices_in_db(conn, s["organization_id"])
    assert listed(s["invoices"]) == in_db and len(in_db) == 1
    assert in_db[0][0] == s["invoice_id"] and in_db[0][1] == "open" and in_db[0][2] == s["total_minor"]
    lines = one(conn, "select sum(amount_minor) from billing.invoice_lines where organization_id = %s and invoice_id = %s",
                (s["organization_id"], s["invoice_id"]))[0]
    assert lines == s["total_minor"]


def check_app_flow(conn: psycopg.Connection, s: dict) -> None:
    org = s["organization_id"]
    assert memberships(conn, org) == {s["owner_id"]: "tenant_owner", s["member_id"]: "tenant_member"}
    before, after = s["access_before"], s["access_after"]
    assert before["plan"] == "free" and before["feature"] == s["feature_key"]
    assert before["limit"] == catalog_limit(conn, "free", s["feature_key"])
    # What the feature's meter counted between the two checks is what the events hold.
    meter = one(conn, "select meter_key from catalog.features where key = %s", (s["feature_key"],))[0]
    events = one(conn, "select coalesce(sum(quantity), 0) from usage.events where organization_id = %s and meter_key = %s",
                 (org, meter))[0]
    assert events > 0 and after["used"] - before["used"] == events == counted(conn, org, meter)
    assert len(usage_events(conn, org, s["idempotency_key"])) == 1
    assert s["usage_retry"] == [s["usage"][0], True]
    assert payment_events(conn, s["provider"], s["provider_event_id"]) == [
        (s["webhook"][0], "subscription.updated", org, "processed")]
    assert s["webhook_redelivery"] == [s["webhook"][0], True]
    assert live_plan(conn, org) == "pro"
    in_db = invoices_in_db(conn, org)
    assert [i[0] for i in in_db] == [s["invoice_id"]]
    assert listed(s["owner_invoices"]) == in_db
    assert s["member_invoices"] == []  # tenant_member has no billing.view


CHECKS = {
    "create_organization": check_create_organization,
    "invitations": check_invitations,
    "feature_access": check_feature_access,
    "record_usage": check_record_usage,
    "payment_webhook": check_payment_webhook,
    "invoices": check_invoices,
    "app_flow": check_app_flow,
}
HELPERS = {"postgrest", "run_all"}  # imported by the examples, or running them


def test_every_python_example_has_a_check() -> None:
    files = {p.stem for p in PY.glob("*.py")}
    assert files - HELPERS == set(CHECKS), "each runnable example needs its check in CHECKS"
    run_all = example("run_all")
    assert run_all.HELPERS == HELPERS
    assert sorted(run_all.discover()) == sorted(CHECKS), "the runner runs every example"
    assert run_all.discover()[-1] == "app_flow"  # all of it in order, last


def run_all_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PY / "run_all.py"), *args], capture_output=True, text=True, timeout=600,
                          cwd=cwd, env=env)


def test_the_runner_runs_every_example_and_reports_each(dsn: str) -> None:
    done = run_all_cli("--dsn", dsn, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["example"] for r in results] == example("run_all").discover()
    assert all(r["ok"] and r["error"] == "" for r in results), results
    with psycopg.connect(dsn, autocommit=True) as conn:
        for r in results:
            CHECKS[r["example"]](conn, r["summary"])
    report = run_all_cli("--dsn", dsn, "--only", "record_usage", "create_organization")
    assert report.returncode == 0, report.stdout + report.stderr
    lines = report.stdout.splitlines()
    assert lines[0].startswith("running 2 examples against database ")
    assert [line.split()[:2] for line in lines[1:3]] == [["ok", "create_organization"], ["ok", "record_usage"]]
    assert lines[-1] == "2 examples: 2 ok, 0 failing"


def test_the_runner_finds_tenantdb_up_and_says_when_there_is_no_database(dsn: str, tmp_path: Path) -> None:
    """Without --dsn or DATABASE_URL the runner uses the server `tenantdb up`
    recorded in ./.tenantdb, as the tenantdb commands do; with none, exit 2."""
    from tenantdb import embedded

    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    done = run_all_cli("--only", "feature_access", cwd=tmp_path, env=env)
    assert done.returncode == 2 and "tenantdb up" in done.stderr, done.stdout + done.stderr
    data = tmp_path / ".tenantdb"  # what `tenantdb up` leaves: its record and the server's pid file
    data.mkdir()
    (data / embedded.RECORD).write_text(json.dumps(asdict(embedded.Server(dsn=dsn, tcp_dsn=dsn, port=0, data_dir=str(data)))))
    (data / "postmaster.pid").write_text("")
    done = run_all_cli("--only", "feature_access", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[1].split()[:2] == ["ok", "feature_access"]
    failing = run_all_cli("--dsn", "host=/nonexistent dbname=nothing connect_timeout=2", "--only", "feature_access")
    assert failing.returncode == 1 and "FAIL  feature_access" in failing.stdout
    assert failing.stdout.splitlines()[-1] == "1 examples: 0 ok, 1 failing (feature_access)"
    unknown = run_all_cli("--dsn", dsn, "--only", "nope")
    assert unknown.returncode == 2 and "no example nope" in unknown.stderr


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_python_example_runs_and_leaves_its_effects(dsn: str, name: str) -> None:
    summary = run_example(name, dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        CHECKS[name](conn, summary)


def test_python_examples_run_twice_on_one_database(dsn: str) -> None:
    """`tenantdb up` reuses its database: a second run makes new users and slugs."""
    first, second = run_example("app_flow", dsn), run_example("app_flow", dsn)
    assert first["organization_id"] != second["organization_id"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        check_app_flow(conn, second)


def test_the_request_helpers_act_as_postgrest_and_end_with_the_transaction(dsn: str) -> None:
    """The request blocks are tenantdb.client's; examples/python/postgrest.py re-exports them."""
    postgrest = example("postgrest")
    assert all(getattr(postgrest, n) is getattr(client, n) for n in ("as_user", "as_service", "as_anon", "connect",
                                                                     "request", "sign_up"))
    with client.connect(dsn) as conn:
        login = one(conn, "select current_user")[0]
        user = client.sign_up(conn, f"helper-{uuid.uuid4().hex[:8]}@example.com")
        org = str(one(conn, "select organization_id from tenancy.memberships where user_id = %s", (user,))[0])
        with client.as_user(conn, user):
            assert one(conn, "select current_user, auth.uid()::text, auth.role()") == ("authenticated", user, "authenticated")
        with client.as_user(conn, user, organization_id=org):  # the pre-request narrows it, as PostgREST's would
            assert one(conn, "select current_user, auth.jwt() ->> 'organization_id'") == ("organization_scoped", org)
        with client.as_service(conn):
            assert one(conn, "select current_user, auth.uid(), auth.role()") == ("service_role", None, "service_role")
        with client.as_service(conn, user_id=user):
            assert one(conn, "select current_user, auth.uid()::text") == ("service_role", user)
        with client.as_anon(conn):
            assert one(conn, "select current_user, auth.uid(), auth.role()") == ("anon", None, "anon")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # refused by scope_request: not a member
            with client.as_user(conn, user, organization_id=str(uuid.uuid4())):
                pass
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # a refusal inside the block rolls it back
            with client.as_user(conn, user):
                conn.execute("select public.renew_subscriptions()")
        assert one(conn, "select current_user, coalesce(current_setting('request.jwt.claims', true), '')") == (login, "")
        with conn.transaction():  # inside an open transaction the switch would outlive the block
            with pytest.raises(ValueError):
                with client.as_user(conn, user):
                    pass
    with psycopg.connect(dsn) as conn:  # not autocommit: the switch would outlive the block
        with pytest.raises(ValueError):
            with client.as_user(conn, user):
                pass


def test_python_example_calls_surface_refusals(dsn: str) -> None:
    """The helpers pass Postgres's refusals through: no seat left on the
    free plan (the invitation is refused, as its docstring says), and, on a
    plan with seats, the invitation is for another address."""
    postgrest, orgs, invitations = example("postgrest"), example("create_organization"), example("invitations")
    webhook = example("payment_webhook")
    run = uuid.uuid4().hex[:8]
    with postgrest.connect(dsn) as conn:
        owner = postgrest.sign_up(conn, f"owner-{run}@example.com")
        org = orgs.create_organization(conn, owner, f"Acme {run}", f"acme-{run}")
        with pytest.raises(psycopg.errors.ProgramLimitExceeded):
            invitations.invite_member(conn, owner, org, f"invited-{run}@example.com")
        assert one(conn, "select count(*) from tenancy.invitations where organization_id = %s", (org,))[0] == 0
        webhook.ingest_payment_event(conn, "stripe", f"evt_{uuid.uuid4().hex}", "subscription.updated",
                                     webhook.subscription_updated(org, "pro", f"sub_{run}"), datetime.now(timezone.utc))
        webhook.process_payment_events(conn, f"refusals-{run}")
        _, token = invitations.invite_member(conn, owner, org, f"invited-{run}@example.com")
        stranger = postgrest.sign_up(conn, f"stranger-{run}@example.com")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            invitations.accept_invitation(conn, stranger, token)
        assert memberships(conn, org) == {owner: "tenant_owner"}


# --- supabase-js: parse the calls ---------------------------------------------

@dataclass
class RpcCall:
    file: str
    client: str  # the receiver: supabase (the user's session) or supabaseAdmin (service role key)
    name: str
    keys: list[str]


def _skip_string(text: str, i: int) -> int:
    quote = text[i]
    i += 1
    while text[i] != quote:
        i += 2 if text[i] == "\\" else 1
    return i + 1


def object_keys(text: str, start: int) -> list[str]:
    """The top-level keys of the object literal opening at text[start] ('{'),
    shorthand properties included; nested values, strings and comments skipped."""
    assert text[start] == "{"
    keys: list[str] = []
    depth, i, expect_key = 0, start, False
    while True:
        c = text[i]
        if c in "'\"`":
            i = _skip_string(text, i)
            continue
        if text.startswith("//", i):
            i = text.index("\n", i)
            continue
        if text.startswith("/*", i):
            i = text.index("*/", i) + 2
            continue
        if c in "{[(":
            depth += 1
            expect_key = depth == 1
        elif c in "}])":
            depth -= 1
            if depth == 0:
                return keys
        elif c == "," and depth == 1:
            expect_key = True
        elif expect_key and not c.isspace():
            match = re.compile(r"([A-Za-z_$][\w$]*)\s*([:,}])").match(text, i)
            assert match, f"not a plain key at {text[i:i + 40]!r}"
            keys.append(match.group(1))
            expect_key = False
            i = match.end(1)
            continue
        i += 1


RPC = re.compile(r"(\w+)\s*\.rpc\(\s*(['\"])(\w+)\2\s*([,)])\s*")


def rpc_calls(path: Path) -> list[RpcCall]:
    text = path.read_text()
    calls = []
    for m in RPC.finditer(text):
        if m.group(4) == ")":
            keys = []
        else:
            assert text[m.end()] == "{", f"{path.name}: rpc('{m.group(3)}', …) must pass an object literal"
            keys = object_keys(text, m.end())
        calls.append(RpcCall(path.name, m.group(1), m.group(3), keys))
    return calls


READ = re.compile(r"(?:\.schema\(\s*'(\w+)'\s*\)\s*)?\.from\(\s*'(\w+)'\s*\)\s*\.select\(\s*'([^']*)'\s*\)"
                  r"((?:\s*\.\w+\([^()]*(?:\{[^{}]*\})?[^()]*\))*)")


def table_reads(path: Path) -> list[tuple[str, str, list[str], list[str]]]:
    """(schema, table, columns, eq-filtered columns) of each .from(…).select('…')."""
    text = path.read_text()
    reads = [(m.group(1) or API, m.group(2), [c.strip() for c in m.group(3).split(",")],
              re.findall(r"\.eq\(\s*'(\w+)'", m.group(4))) for m in READ.finditer(text)]
    assert len(reads) == text.count(".from("), f"{path.name}: every .from() must go with .select('literal columns')"
    return reads


def js_files() -> list[Path]:
    return sorted([*JS.glob("*.mjs"), *JS.glob("*.ts")])


# createClient(…), or createClient<Database>(…) typed by the generated types (tests/test_types.py)
CREATE_CLIENT = r"createClient(?:<\w+>)?\("


def all_rpc_calls() -> list[RpcCall]:
    return [c for f in js_files() for c in rpc_calls(f)]


def test_the_parser_reads_keys_as_written() -> None:
    src = """await supabaseAdmin.rpc('f', {
      p_a: 1, // a comment, with: a colon
      p_b: { nested: [1, { deep: 2 }], 'x': "}" },
      p_c,
      p_d: fn(a, { e: 1 }),
    }).single()
    await supabase.rpc('g')"""
    path = Path("/tmp") / f"parser-{uuid.uuid4().hex}.mjs"
    path.write_text(src)
    try:
        assert [(c.client, c.name, c.keys) for c in rpc_calls(path)] == [
            ("supabaseAdmin", "f", ["p_a", "p_b", "p_c", "p_d"]), ("supabase", "g", [])]
    finally:
        path.unlink()


def test_both_forms_show_the_six_calls() -> None:
    js = {c.name for c in all_rpc_calls()}
    assert SIX <= js, f"missing in examples/supabase-js: {SIX - js}"
    py = "\n".join(p.read_text() for p in PY.glob("*.py"))
    assert {n for n in SIX if f"from {API}.{n}(" in py} == SIX


def test_the_clients_are_what_their_names_say() -> None:
    """`supabase` holds the anon key (the user's session), `supabaseAdmin` the
    service role key; the receivers' names decide the role the calls run as below."""
    client = (JS / "client.ts").read_text()
    assert re.search(rf"supabase\s*=\s*{CREATE_CLIENT}[^)]*SUPABASE_ANON_KEY", client)
    assert re.search(rf"supabaseAdmin\s*=\s*{CREATE_CLIENT}[^)]*SUPABASE_SERVICE_ROLE_KEY", client)
    for f in js_files():
        text = f.read_text()
        assert {c.client for c in rpc_calls(f)} <= {"supabase", "supabaseAdmin"}, f.name
        if "supabaseAdmin." in text or re.search(r"supabaseAdmin\s*\.rpc", text):
            assert (re.search(r"import \{[^}]*\bsupabaseAdmin\b[^}]*\} from './client\.ts'", text)
                    or re.search(rf"supabaseAdmin\s*=\s*{CREATE_CLIENT}[^;]*SUPABASE_SERVICE_ROLE_KEY", text)), f.name


@dataclass
class Signature:
    params: list[str]  # input parameters, in order
    types: dict[str, str]
    required: set[str]  # those without a default
    returns_set: bool


def signatures(conn: psycopg.Connection, name: str) -> list[Signature]:
    found = []
    rows = conn.execute(
        "select p.proargnames, p.proargmodes, array(select format_type(t, null) from unnest(p.proargtypes) t), "
        "p.pronargs, p.pronargdefaults, p.proretset from pg_proc p "
        "where p.pronamespace = %s::regnamespace and p.proname = %s", (API, name)).fetchall()
    for names, modes, types, nargs, ndefaults, retset in rows:
        modes = modes or ["i"] * len(names or [])
        inputs = [n for n, m in zip(names or [], modes) if m in ("i", "b", "v")]
        assert len(inputs) == nargs, f"{name}: unnamed input parameters"
        found.append(Signature(inputs, dict(zip(inputs, types)), set(inputs[:nargs - ndefaults]), retset))
    return found


def resolve(conn: psycopg.Connection, call: RpcCall) -> Signature:
    """The overload PostgREST would pick for these argument names: all of them
    are parameters, and every parameter left out has a default."""
    options = signatures(conn, call.name)
    assert options, f"{call.file}: no function {API}.{call.name}"
    fitting = [s for s in options if set(call.keys) <= set(s.params) and s.required <= set(call.keys)]
    assert len(fitting) == 1, (f"{call.file}: {call.name}({', '.join(call.keys)}) does not match exactly one of "
                               f"{[s.params for s in options]}")
    return fitting[0]


def test_every_rpc_names_an_api_function_with_those_parameters(dsn: str) -> None:
    calls = all_rpc_calls()
    assert calls
    with psycopg.connect(dsn) as conn:
        for call in calls:
            assert resolve(conn, call).params, call
            assert all(k.startswith("p_") for k in call.keys), call


def postgrest_rpc(conn: psycopg.Connection, sig: Signature, name: str, body: dict, role: str, claims: dict) -> list[tuple]:
    """The request as PostgREST runs it: one transaction, the role and the
    claims, then the function called by name with the JSON body's values
    typed by its parameters (json_to_record, as PostgREST does)."""
    fn = sql.SQL("{}.{}").format(sql.Identifier(API), sql.Identifier(name))
    if body:
        cols = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(k), sql.SQL(sig.types[k])) for k in body)
        args = sql.SQL(", ").join(sql.SQL("{} := pgrst_body.{}").format(sql.Identifier(k), sql.Identifier(k)) for k in body)
        source = sql.SQL("json_to_record(%s::json) as pgrst_body({})").format(cols)
        if sig.returns_set:
            query = sql.SQL("select pgrst_call.* from {}, lateral {}({}) pgrst_call").format(source, fn, args)
        else:
            query = sql.SQL("select {}({}) from {}").format(fn, args, source)
        params: tuple = (json.dumps(body),)
    else:
        query = sql.SQL("select pgrst_call.* from {}() pgrst_call").format(fn)
        params = ()
    with conn.transaction():
        conn.execute("select set_config('request.jwt.claims', %s, true), set_config('role', %s, true)",
                     (json.dumps(claims), role))
        return conn.execute(query, params).fetchall()


# The order an app meets the calls in; a function the JS examples call that is
# not here needs its place and its values below.
# The free plan's one seat is the owner's: the organization moves to a plan
# with seats (the back end's change_subscription_plan) before the invitation.
FLOW = ["create_organization", "check_feature_access", "record_usage", "change_subscription_plan", "invite_member",
        "accept_invitation", "ingest_payment_event", "process_payment_events", "generate_invoice", "finalize_invoice"]


def run_js_flow(dsn: str) -> dict:
    """Every rpc of the JS examples, in FLOW order, with the Python examples' values,
    as the role its client stands for. Returns the state it made."""
    postgrest, app_flow = example("postgrest"), example("app_flow")
    webhook, invoices = example("payment_webhook"), example("invoices")
    run = uuid.uuid4().hex[:8]
    calls = all_rpc_calls()
    unknown = {c.name for c in calls} - set(FLOW)
    assert not unknown, f"place {unknown} in FLOW and give them values"
    with postgrest.connect(dsn) as conn:
        state = {"owner": postgrest.sign_up(conn, f"owner-{run}@example.com"), "teammate_email": f"teammate-{run}@example.com",
                 "usage_key": f"js-request:{uuid.uuid4()}", "provider_event_id": f"evt_js_{run}", "results": {}}
        state["teammate"] = postgrest.sign_up(conn, state["teammate_email"])

        def values(name: str) -> dict:
            org = state.get("org")
            return {
                "create_organization": lambda: {"p_name": f"Acme JS {run}", "p_slug": f"acme-js-{run}", "p_org_type": "business"},
                "invite_member": lambda: {"p_organization_id": org, "p_email": state["teammate_email"],
                                          "p_role_key": "tenant_member", "p_valid_for": "7 days"},
                "accept_invitation": lambda: {"p_token": state["token"]},
                "change_subscription_plan": lambda: {"p_organization_id": org, "p_plan_key": "pro"},
                "check_feature_access": lambda: {"p_user_id": state["owner"], "p_feature_key": app_flow.FEATURE,
                                                 "p_organization_id": org},
                "record_usage": lambda: {"p_organization_id": org, "p_meter_key": "api_call", "p_quantity": 5,
                                         "p_idempotency_key": state["usage_key"],
                                         "p_occurred_at": datetime.now(timezone.utc).isoformat(), "p_metadata": {}},
                "ingest_payment_event": lambda: {"p_provider": "stripe", "p_provider_event_id": state["provider_event_id"],
                                                 "p_event_type": "subscription.updated",
                                                 "p_payload": webhook.subscription_updated(org, "pro", f"sub_js_{run}"),
                                                 "p_occurred_at": datetime.now(timezone.utc).isoformat()},
                "process_payment_events": lambda: {"p_worker": f"js-worker-{run}", "p_max_events": 100, "p_lease": "5 minutes"},
                "generate_invoice": lambda: {"p_organization_id": org,
                                             "p_period_start": invoices.current_period_start(conn, org).isoformat()},
                "finalize_invoice": lambda: {"p_organization_id": org, "p_invoice_id": state["invoice"]},
            }[name]()

        for call in sorted(calls, key=lambda c: FLOW.index(c.name)):
            sig = resolve(conn, call)
            offered = values(call.name)
            missing = set(call.keys) - set(offered)
            assert not missing, f"{call.file}: give {call.name}'s {missing} a value in run_js_flow"
            body = {k: offered[k] for k in call.keys}
            if call.client == "supabaseAdmin":
                role, claims = "service_role", {"role": "service_role"}
            else:
                user = state["teammate"] if call.name == "accept_invitation" else state["owner"]
                role, claims = "authenticated", {"sub": user, "role": "authenticated", "aud": "authenticated"}
            rows = postgrest_rpc(conn, sig, call.name, body, role, claims)
            state["results"].setdefault(call.name, []).append(rows)
            if call.name == "create_organization":
                state["org"] = str(rows[0][0])
            elif call.name == "invite_member":
                state["token"] = rows[0][1]
            elif call.name == "generate_invoice":
                state["invoice"] = str(rows[0][0])
    return state


def test_every_rpc_runs_as_postgrest_would_run_it(dsn: str) -> None:
    state = run_js_flow(dsn)
    org, results = state["org"], state["results"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert memberships(conn, org) == {state["owner"]: "tenant_owner", state["teammate"]: "tenant_member"}
        access = results["check_feature_access"][0][0][0]
        assert access["plan"] == "free" and access["limit"] == catalog_limit(conn, "free", access["feature"])
        # record_usage is called more than once with one key: stored once.
        assert len(results["record_usage"]) >= 1
        assert len(usage_events(conn, org, state["usage_key"])) == 1
        assert [r[0][1] for r in results["record_usage"]] == [False] + [True] * (len(results["record_usage"]) - 1)
        assert len(payment_events(conn, "stripe", state["provider_event_id"])) == 1
        if "process_payment_events" in results:
            assert live_plan(conn, org) == "pro"
        if "finalize_invoice" in results:
            assert one(conn, "select status from billing.invoices where organization_id = %s and id = %s",
                       (org, state["invoice"]))[0] == "open"


def test_table_reads_of_the_js_examples(dsn: str) -> None:
    """`.schema(s).from(t).select(cols)`: the columns exist; as the owner the
    read returns what the table holds for the organization, as a member without
    the permission nothing; a schema other than the API schema is documented
    as one to expose."""
    reads = [(f, r) for f in js_files() for r in table_reads(f)]
    assert reads, "the invoice list is a table read"
    state = run_js_flow(dsn)
    readme = (EXAMPLES / "README.md").read_text()
    with psycopg.connect(dsn, autocommit=True) as conn:
        for f, (schema, table, cols, filters) in reads:
            existing = {r[0] for r in conn.execute("select column_name from information_schema.columns "
                                                   "where table_schema = %s and table_name = %s", (schema, table))}
            assert existing, f"{f.name}: no relation {schema}.{table}"
            assert set(cols) <= existing, f"{f.name}: {set(cols) - existing} not in {schema}.{table}"
            if schema != API:
                assert "db-schemas" in readme and f"`{schema}`" in readme, f"{f.name}: say that {schema} must be exposed"
            query = sql.SQL("select {} from {}.{} where {} order by 1").format(
                sql.SQL(", ").join(map(sql.Identifier, cols)), sql.Identifier(schema), sql.Identifier(table),
                sql.SQL(" and ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in filters) if filters else sql.SQL("true"))
            assert filters == ["organization_id"], f"{f.name}: read {schema}.{table} for one organization"
            params = (state["org"],)
            truth = conn.execute(query, params).fetchall()
            assert truth, f"{schema}.{table} holds nothing for the organization: the flow made no row to read"
            for user, expected in ((state["owner"], truth), (state["teammate"], [])):
                with conn.transaction():
                    conn.execute("select set_config('request.jwt.claims', %s, true), set_config('role', 'authenticated', true)",
                                 (json.dumps({"sub": user, "role": "authenticated"}),))
                    assert conn.execute(query, params).fetchall() == expected
