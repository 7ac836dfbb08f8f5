"""tenantdb types typescript: the committed examples/supabase-js/database.types.ts
is what the command writes for a freshly migrated and seeded database; the
supabase-js examples type-check against it (`npm ci`, then `tsc --noEmit`);
tsc does fail on a call or a read the database does not have (the negative
control); and the Postgres types map as supabase-js expects them.

Needs node and npm (scripts/test.sh installs them) and the npm registry for
the first `npm ci`; fails, never skips, without them."""

from __future__ import annotations

import difflib
import json
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from conftest import ROOT
from tenantdb import typegen

JS = ROOT / "examples" / "supabase-js"
COMMITTED = JS / "database.types.ts"
STALE = ("examples/supabase-js/database.types.ts is stale: regenerate it from a freshly migrated and seeded database "
         "with `tenantdb types typescript --out examples/supabase-js/database.types.ts`")
NO_NODE = "node and npm are needed for the supabase-js type check: scripts/test.sh installs them (Debian: nodejs, npm)"


def generated(dsn: str, **kw) -> str:
    return typegen.generate(dsn, **kw)


# -- the committed file -----------------------------------------------------------

def test_committed_types_are_current(dsn: str) -> None:
    made, committed = generated(dsn), COMMITTED.read_text()
    if made != committed:
        diff = "\n".join(list(difflib.unified_diff(committed.splitlines(), made.splitlines(), "committed", "generated",
                                                   lineterm=""))[:60])
        pytest.fail(f"{STALE}\n{diff}")


def test_the_cli_writes_and_prints_the_types(dsn: str, tmp_path: Path) -> None:
    out = tmp_path / "sub" / "database.types.ts"
    cli = [sys.executable, str(ROOT / "cli.py"), "--dsn", dsn, "types", "typescript"]
    wrote = subprocess.run([*cli, "--out", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert wrote.returncode == 0, wrote.stderr
    assert wrote.stdout.strip() == f"wrote {out}"
    printed = subprocess.run(cli, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert printed.returncode == 0, printed.stderr
    assert out.read_text() == printed.stdout == generated(dsn)
    missing = subprocess.run([*cli, "--api-schema", "no_such_schema"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert missing.returncode == 2 and "no schema no_such_schema" in missing.stderr


def test_output_does_not_depend_on_the_connection(dsn: str) -> None:
    """Another search_path gives the same text: every name is qualified."""
    with psycopg.connect(dsn, autocommit=True, options="-c search_path=tenancy,app,private,auth,public") as conn:
        assert typegen.typescript(typegen.read_catalog(conn, "public")) == generated(dsn)


# -- what is in it ------------------------------------------------------------------

def top_level(text: str) -> list[str]:
    body = text[text.index("export type Database = {"):text.index("\n}\n")]
    return re.findall(r"^  (\w+): \{$", body, re.M)


def block(text: str, path: list[str]) -> str:
    """The text of Database[path[0]][path[1]]... (by indentation)."""
    start = text.index("export type Database = {")
    indent = 2
    for name in path:
        m = re.compile(rf"^{' ' * indent}{re.escape(name)}: ", re.M).search(text, start)
        assert m, f"no {'.'.join(path)}"
        start, indent = m.end(), indent + 2
    end = re.compile(rf"^{' ' * (indent - 2)}}}$", re.M).search(text, start)
    return text[start:end.end() if end else len(text)]


def fields(text: str) -> dict[str, str]:
    """name -> type of the directly nested fields of an object block."""
    first = re.search(r"^( +)\S", text, re.M)
    if first is None:
        return {}
    pad = first.group(1)
    return dict(re.findall(rf"^{pad}(\"[^\"]+\"|[\w$]+\??): (.+)$", text, re.M))


def test_the_schemas_are_the_api_and_those_authenticated_may_read(dsn: str) -> None:
    text = generated(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        readable = {s for (s,) in conn.execute(
            "select distinct n.nspname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where c.relkind in ('r', 'p', 'v', 'm', 'f') and not c.relispartition "
            "and has_schema_privilege('authenticated', n.oid, 'usage') "
            "and has_any_column_privilege('authenticated', c.oid, 'select') "
            "and n.nspname not in ('pg_catalog', 'information_schema')")}
        functions = {n for (n,) in conn.execute(
            "select p.proname from pg_proc p where p.pronamespace = 'public'::regnamespace and p.prokind = 'f' "
            "and not exists (select from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid "
            "and d.deptype = 'e')")}
        assert conn.execute("select count(*) from pg_proc where proname = 'is_empty' and "
                            "pronamespace = 'public'::regnamespace").fetchone()[0], "pgTAP is in public"
    assert top_level(text) == sorted(readable | {"public"})
    assert {"tenantdb", "private", "auth", "extensions"}.isdisjoint(top_level(text))
    # Every API function, pgTAP's (an extension's) none.
    listed = {k.rstrip("?") for k in fields(block(text, ["public", "Functions"]))} | set(
        re.findall(r"^      (\w+):$", block(text, ["public", "Functions"]), re.M))
    assert listed == functions
    # Relations: only those authenticated may read; their columns only those it may select.
    billing = block(text, ["billing", "Tables"])
    assert "\n      invoices: {" in billing and "payment_events" not in billing
    with psycopg.connect(dsn, autocommit=True) as conn:
        hidden = {n for (n,) in conn.execute(
            "select attname from pg_attribute where attrelid = 'identity.accounts'::regclass and attnum > 0 "
            "and not attisdropped and not has_column_privilege('authenticated', attrelid, attnum, 'select')")}
    assert hidden, "identity.accounts has columns authenticated may not read"
    row = fields(block(text, ["identity", "Tables", "accounts", "Row"]))
    assert row and hidden.isdisjoint(row)


def test_functions_as_supabase_js_expects_them(dsn: str) -> None:
    text = generated(dsn)
    fns = block(text, ["public", "Functions"])
    # Arguments by name, sorted; those with a default optional; returns table: an array of rows.
    invite = block(text, ["public", "Functions", "invite_member"])
    assert fields(block(text, ["public", "Functions", "invite_member", "Args"])) == {
        "p_email": "string", "p_organization_id": "string", "p_role_key?": "string", "p_valid_for?": "string"}
    assert "Returns: {\n" in invite and re.search(r"invitation_id: string \| null\n\s+token: string \| null\n\s+\}\[\]", invite)
    assert "accept_invitation: { Args: { p_token: string }; Returns: string }" in fns
    assert "is_platform_team_member: { Args: never; Returns: boolean }" in fns
    assert re.search(r"leave_organization: \{\n\s+Args: \{ p_organization_id: string \}\n\s+Returns: undefined", fns)
    assert re.search(r"check_feature_access: \{\n(.*\n)*?\s+Returns: Json\n", fns)
    assert re.search(r"finalize_invoice: \{\n(.*\n)*?\s+Returns: number\n", fns)  # bigint


PROBE = """
create schema probe;
create type probe.mood as enum ('happy', 'sad', 'it''s "complicated"');
create type probe.point as (x float8, y float8);
create domain probe.positive as int4 check (value > 0);
create table probe.things (
  id bigint generated always as identity primary key,
  label text not null,
  note varchar(20),
  mood probe.mood not null default 'happy',
  moods probe.mood[],
  tags text[] not null default '{}',
  amount numeric(10, 2),
  at timestamptz not null default now(),
  during interval,
  day date,
  flag boolean,
  doc jsonb,
  place probe.point,
  n probe.positive not null,
  host inet,
  twice int4 generated always as (n * 2) stored,
  secret text,
  "odd name" text
);
create table probe.parts (
  id int4 generated by default as identity primary key,
  thing_id bigint not null unique references probe.things(id),
  other_id bigint references probe.things(id)
);
create table probe.hidden (id int4);
create view probe.labels as select id, label from probe.things;
grant usage on schema probe to authenticated;
grant select (id, label, note, mood, moods, tags, amount, at, during, day, flag, doc, place, n, host, twice, "odd name")
  on probe.things to authenticated;
grant insert (label, note, mood, n, twice, id) on probe.things to authenticated;
grant update (note) on probe.things to authenticated;
grant select on probe.parts, probe.labels to authenticated;
create table public.probe_items (id int4 primary key, name text);
grant select on public.probe_items to authenticated;
create function public.probe_items_all() returns setof public.probe_items language sql as 'select * from public.probe_items';
create function public.probe_item(p_id int4) returns public.probe_items language sql as
  'select * from public.probe_items where id = p_id';
create function public.probe_out(p_a int4, out total int8, out label text) language sql as 'select 1::int8, ''x''';
create function public.probe_defaults(p_ids uuid[], p_mood probe.mood default 'sad', p_point probe.point default null)
  returns probe.mood[] language sql as 'select array[p_mood]';
create function public.probe_over(p_a text) returns text language sql as 'select p_a';
create function public.probe_over(p_a text, p_b int4) returns int4 language sql as 'select p_b';
create function public.probe_unnamed(int4, int4) returns int4 language sql as 'select 1';
create function public.probe_json(jsonb) returns jsonb language sql as 'select $1';
create function public.probe_trigger() returns trigger language plpgsql as 'begin return new; end';
"""


@pytest.fixture
def probe_types(dsn: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(PROBE)
    return generated(dsn)


def test_postgres_types_map_as_postgrest_returns_them(probe_types: str) -> None:
    text = probe_types
    assert "probe" in top_level(text)
    assert fields(block(text, ["probe", "Enums"])) == {"mood": '"happy" | "sad" | "it\'s \\"complicated\\""'}
    assert fields(block(text, ["probe", "CompositeTypes", "point"])) == {"x": "number | null", "y": "number | null"}
    assert "hidden" not in block(text, ["probe", "Tables"])
    row = fields(block(text, ["probe", "Tables", "things", "Row"]))
    assert row == {
        "amount": "number | null", "at": "string", "day": "string | null", "doc": "Json | null",
        "during": "string | null", "flag": "boolean | null", "host": "string | null", "id": "number",
        "label": "string", "mood": 'Database["probe"]["Enums"]["mood"]',
        "moods": 'Database["probe"]["Enums"]["mood"][] | null', "n": "number", "note": "string | null",
        '"odd name"': "string | null", "place": 'Database["probe"]["CompositeTypes"]["point"] | null',
        "tags": "string[]", "twice": "number | null",
    }  # no `secret`: authenticated may not select it
    # Insert: what authenticated may insert; identity always and generated: never; defaults and nulls optional.
    assert fields(block(text, ["probe", "Tables", "things", "Insert"])) == {
        "id?": "never", "label": "string", "mood?": 'Database["probe"]["Enums"]["mood"]', "n": "number",
        "note?": "string | null", "twice?": "never"}
    assert fields(block(text, ["probe", "Tables", "things", "Update"])) == {"note?": "string | null"}
    parts = block(text, ["probe", "Tables", "parts"])
    assert "Insert: never" in parts and "Update: never" in parts
    assert re.search(r'foreignKeyName: "parts_thing_id_fkey"\n\s+columns: \["thing_id"\]\n\s+isOneToOne: true\n'
                     r'\s+referencedRelation: "things"\n\s+referencedColumns: \["id"\]', parts)
    assert re.search(r'foreignKeyName: "parts_other_id_fkey"\n\s+columns: \["other_id"\]\n\s+isOneToOne: false', parts)
    view = block(text, ["probe", "Views", "labels"])
    assert fields(block(text, ["probe", "Views", "labels", "Row"])) == {"id": "number | null", "label": "string | null"}
    assert "Insert: never" in view and "Update: never" in view  # writable, but not by authenticated
    fns = block(text, ["public", "Functions"])
    assert re.search(r"probe_items_all: \{\n\s+Args: never\n\s+Returns: \{\n\s+id: number\n\s+name: string \| null\n"
                     r"\s+\}\[\]\n\s+SetofOptions: \{\n\s+from: \"\*\"\n\s+to: \"probe_items\"\n\s+isOneToOne: false\n"
                     r"\s+isSetofReturn: true\n", fns)
    assert re.search(r"probe_item: \{\n\s+Args: \{ p_id: number \}\n\s+Returns: \{\n(.*\n){3}\s+SetofOptions: \{\n"
                     r"(.*\n){2}\s+isOneToOne: true\n\s+isSetofReturn: false\n", fns)
    assert re.search(r"probe_out: \{\n\s+Args: \{ p_a: number \}\n\s+Returns: \{\n\s+label: string \| null\n\s+total: number \| null\n\s+\}\n", fns)
    assert re.search(r'p_ids: string\[\]\n\s+p_mood\?: Database\["probe"\]\["Enums"\]\["mood"\]\n'
                     r'\s+p_point\?: Database\["probe"\]\["CompositeTypes"\]\["point"\]\n\s+\}\n'
                     r'\s+Returns: Database\["probe"\]\["Enums"\]\["mood"\]\[\]', fns)
    assert re.search(r"probe_over:\n\s+\| \{ Args: \{ p_a: string \}; Returns: string \}\n"
                     r"\s+\| \{ Args: \{ p_a: string; p_b: number \}; Returns: number \}", fns), fns
    assert 'probe_json: { Args: { "": Json }; Returns: Json }' in fns
    assert "probe_unnamed" not in fns and "probe_trigger" not in fns
    assert "Enums: {\n      mood: [\"happy\", \"sad\", \"it's \\\"complicated\\\"\"]" in text[text.index("export const Constants"):]


# -- tsc -------------------------------------------------------------------------------

def run(cmd: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def installed_matches_lock() -> bool:
    """node_modules holds exactly the pinned devDependencies (else npm ci again)."""
    pinned = json.loads((JS / "package.json").read_text())["devDependencies"]
    for name, version in pinned.items():
        manifest = JS / "node_modules" / name / "package.json"
        if not manifest.is_file() or json.loads(manifest.read_text()).get("version") != version:
            return False
    return True


@pytest.fixture(scope="module")
def tsc() -> Iterator:
    """tsc of examples/supabase-js (npm ci where node_modules is missing or
    holds other versions): tsc(project_dir) -> CompletedProcess."""
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.fail(NO_NODE)
    if not installed_matches_lock():
        done = run(["npm", "ci", "--no-audit", "--no-fund"], JS)
        assert done.returncode == 0, f"npm ci in {JS} failed:\n{done.stdout}\n{done.stderr}"
        assert installed_matches_lock(), "npm ci did not install package.json's versions: is package-lock.json current?"

    def check(project: Path) -> subprocess.CompletedProcess:
        # --no-install: the tsc of node_modules, never one fetched on the fly
        return run(["npx", "--no-install", "tsc", "--noEmit", "-p", str(project)], JS, timeout=300)

    yield check


def test_the_examples_type_check_against_the_generated_types(tsc) -> None:
    """`tsc --noEmit -p examples/supabase-js`: every .rpc() and .from().select()
    of the examples fits database.types.ts (test_committed_types_are_current
    keeps that file the database's)."""
    done = tsc(JS)
    assert done.returncode == 0, f"tsc --noEmit -p examples/supabase-js:\n{done.stdout}\n{done.stderr}"
    files = {p.name for p in JS.glob("*.ts")}
    assert {"client.ts", "database.types.ts", "payment_webhook.ts", "invoices.ts"} <= files
    assert not list(JS.glob("*.mjs")), "the examples are TypeScript, so that tsc checks them"
    for f in JS.glob("*.ts"):
        if f.name not in ("database.types.ts", "deno.d.ts"):
            assert "createClient(" not in f.read_text(), f"{f.name}: createClient<Database>(…), so its calls are typed"


GOOD = """
import { supabase } from '../client.ts'
import type { Tables } from '../database.types.ts'

export async function good(org: string): Promise<Pick<Tables<{ schema: 'billing' }, 'invoices'>, 'id' | 'status'>[]> {
  const { data: user } = await supabase.auth.getUser()
  await supabase.rpc('check_feature_access', {
    p_user_id: user.user?.id ?? '', p_feature_key: 'max_seats', p_organization_id: org,
  })
  const { data, error } = await supabase.schema('billing').from('invoices').select('id, status').eq('organization_id', org)
  if (error) throw error
  return data
}
"""

BAD = {
    # an argument the function does not have
    "bad_argument.ts": ("p_no_such_arg", """
import { supabase } from '../client.ts'
export const call = () => supabase.rpc('check_feature_access', { p_no_such_arg: 1 })
"""),
    # a required argument left out
    "missing_argument.ts": ("p_slug", """
import { supabase } from '../client.ts'
export const call = () => supabase.rpc('create_organization', { p_name: 'Acme' })
"""),
    # an argument of the wrong type
    "wrong_type.ts": ("TS2322", """
import { supabase } from '../client.ts'
export const call = () => supabase.rpc('record_usage', {
  p_organization_id: 'x', p_meter_key: 'api_call', p_quantity: 'five', p_idempotency_key: 'k',
})
"""),
    # a function the API schema does not have
    "no_such_function.ts": ("no_such_function", """
import { supabase } from '../client.ts'
export const call = () => supabase.rpc('no_such_function')
"""),
    # a column the table does not have, read into the type the example declares
    "missing_column.ts": ("no_such_column", """
import { supabase } from '../client.ts'
import type { Tables } from '../database.types.ts'
export async function read(): Promise<Pick<Tables<{ schema: 'billing' }, 'invoices'>, 'id'>[]> {
  const { data, error } = await supabase.schema('billing').from('invoices').select('id, no_such_column')
  if (error) throw error
  return data
}
"""),
    # a table authenticated may not read: not in the types
    "unreadable_table.ts": ("payment_events", """
import { supabase } from '../client.ts'
export const read = () => supabase.schema('billing').from('payment_events').select('id')
"""),
}


@pytest.fixture
def scratch_project() -> Iterator[Path]:
    """A project beside the examples (so their node_modules resolve) that
    extends their tsconfig; removed afterwards."""
    project = JS / f".tsc-{uuid.uuid4().hex[:8]}"
    project.mkdir()
    (project / "tsconfig.json").write_text(json.dumps({"extends": "../tsconfig.json", "include": ["*.ts"]}))
    try:
        yield project
    finally:
        shutil.rmtree(project)


def test_tsc_refuses_what_the_database_does_not_have(tsc, scratch_project: Path) -> None:
    """The negative control: the check can fail. A correct file passes in the
    same setup; each wrong one is reported, on its own line, for its reason."""
    (scratch_project / "good.ts").write_text(GOOD)
    done = tsc(scratch_project)
    assert done.returncode == 0, f"the correct file does not type-check:\n{done.stdout}"
    for name, (_, source) in BAD.items():
        (scratch_project / name).write_text(source)
    done = tsc(scratch_project)
    assert done.returncode != 0
    errors = [line for line in done.stdout.splitlines() if re.match(r"\S+\.ts\(\d+,\d+\): error", line)]
    assert not [e for e in errors if "good.ts" in e], done.stdout
    for name, (reason, _) in BAD.items():
        mine = [e for e in errors if f"{scratch_project.name}/{name}(" in e]
        assert mine, f"tsc accepted {name}:\n{done.stdout}"
        assert reason in done.stdout[done.stdout.index(mine[0]):], f"{name}: not refused for {reason}:\n{done.stdout}"


def test_generated_types_for_every_shape_type_check(tsc, probe_types: str, scratch_project: Path) -> None:
    """The probe schema's types (enums, composites, domains, overloads, setof
    rows, OUT parameters, identity and generated columns) are valid TypeScript
    that supabase-js accepts as its Database, and type the calls."""
    (scratch_project / "database.types.ts").write_text(probe_types)
    (scratch_project / "probe.ts").write_text("""
import { createClient } from '@supabase/supabase-js'
import type { Database, Enums, Tables, TablesInsert } from './database.types.ts'
import { Constants } from './database.types.ts'

const client = createClient<Database>('http://localhost', 'key')
export async function probe() {
  const mood: Enums<{ schema: 'probe' }, 'mood'> = Constants.probe.Enums.mood[0]
  const insert: TablesInsert<{ schema: 'probe' }, 'things'> = { label: 'x', n: 1, mood }
  const items = await client.rpc('probe_items_all')
  const first: Tables<'probe_items'> | undefined = items.data?.[0]
  const over = await client.rpc('probe_over', { p_a: 'a', p_b: 2 })
  const moods = await client.rpc('probe_defaults', { p_ids: [] })
  const out = await client.rpc('probe_out', { p_a: 1 })
  const rows = await client.schema('probe').from('things').select('id, label, mood, "odd name"')
  return [insert, first, over.data, moods.data, out.data?.total, rows.data?.[0]?.mood]
}
""")
    done = tsc(scratch_project)
    assert done.returncode == 0, f"{done.stdout}\n{probe_types}"
