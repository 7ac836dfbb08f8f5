"""The public macros are an API for app SQL (docs/macros.md).

- Every macro of sql/macros.sql is on the page, public or internal; each
  public one has its signature there exactly as sql/macros.sql declares it
  (names, order, defaults), each parameter explained, and an example.
- The examples are files of one app project: written into one, migrated,
  seeded and verified against a real database, their effects checked in
  the catalog and by a member's requests.
- The compatibility promise: tests/fixtures/macros_api_v<N>.json holds what
  each pinned call (every call of the examples, and a call with every
  parameter of each public macro) rendered when api_version N was released;
  within a version a public macro renders the same.

Adding an example: `PYTHONPATH=. python tests/test_macros_api.py` pins
the calls that are not pinned yet (it never changes a pinned one).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import jinja2
import psycopg
import pytest
from jinja2 import nodes

from apps import make_app
from conftest import ROOT
from tenantdb import verify
from tenantdb.engine import Engine
from tenantdb.project import load
from tenantdb.render import Renderer, Target

DOC = ROOT / "docs" / "macros.md"
FIXTURES = ROOT / "tests" / "fixtures"
IMPORT = "{% import 'tenantdb/macros.sql' as m with context %}"
# The issue names these as the public API; the page may add more, not fewer.
NAMED_PUBLIC = {"tenant_policies", "personal_policies", "platform_read", "table_grants", "updated_at", "metered",
                "audited", "append_only", "status_transitions", "row_trigger"}
FILE_LINE = re.compile(r"^-- ((?:migrations|functions|policies|seeds)/\d{4}_[a-z0-9_]+(?:\.rollback)?\.sql)$")
CALL = re.compile(r"\{\{-?\s*(m\.\w+\(.*?\))\s*-?\}\}", re.S)
CHANGED = ("a public macro now renders differently: bump api_version (sql/macros.sql) and announce it "
           "(docs/macros.md, the release notes), or restore it")


# -- the page --------------------------------------------------------------------

def section(text: str, heading: str) -> str:
    """The body of the '## heading' section (up to the next '## ')."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"docs/macros.md has no section '## {heading}'"
    return match.group(1)


def public_sections(text: str) -> dict[str, str]:
    """name -> body of each '### name' under '## Public macros'."""
    parts = re.split(r"^### (.+)\n", section(text, "Public macros"), flags=re.M)
    return {name.strip(): body for name, body in zip(parts[1::2], parts[2::2])}


def internal_names(text: str) -> list[str]:
    """The macros the page lists as internal: the code spans leading its bullets."""
    names = []
    for line in section(text, "Internal macros").splitlines():
        if line.startswith("- "):
            names += re.findall(r"`(\w+)`", line.split(":", 1)[0])
    return names


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```$", text, re.M | re.S)


def example_files(text: str) -> dict[str, str]:
    """The app project the examples make: each sql block is the file its
    first line names; the json blocks are seeds/permissions.json and
    seeds/catalog.json (told apart by their keys)."""
    files: dict[str, str] = {}
    for block in blocks(text, "sql"):
        first = FILE_LINE.match(block.splitlines()[0])
        assert first, f"an example does not name its file on its first line (-- functions/0001_x.sql): {block[:80]!r}"
        assert first.group(1) not in files, f"two examples are {first.group(1)}"
        files[first.group(1)] = block
    for block in blocks(text, "json"):
        keys = set(json.loads(block))
        path = "seeds/permissions.json" if keys == {"permissions"} else "seeds/catalog.json"
        assert keys <= {"permissions"} or keys <= {"meters", "features", "plans"}, f"a JSON example with keys {keys}"
        assert path not in files, f"two examples are {path}"
        files[path] = block
    return files


def signature(name: str, body: str) -> list[tuple[str, object]] | str:
    """The documented (parameter, default) list of a public macro: the
    code span on a line of its own, `m.name(...)`; a problem otherwise."""
    found = re.search(r"^`m\.(\w+)\((.*)\)`$", body, re.M)
    if not found or found.group(1) != name:
        return f"{name}: no signature line `m.{name}(...)`"
    try:
        parsed = jinja2.Environment().parse(f"{{% macro {name}({found.group(2)}) %}}{{% endmacro %}}")
    except jinja2.TemplateSyntaxError as exc:
        return f"{name}: the signature does not parse: {exc}"
    return parameters(next(parsed.find_all(nodes.Macro)))


MISSING = "(required)"


def parameters(macro: nodes.Macro) -> list[tuple[str, object]]:
    defaults = [MISSING] * (len(macro.args) - len(macro.defaults)) + [d.as_const() for d in macro.defaults]
    return [(a.name, d) for a, d in zip(macro.args, defaults)]


def macros_source(env: jinja2.Environment) -> str:
    """sql/macros.sql, as an app project's environment loads it."""
    return env.loader.get_source(env, "tenantdb/macros.sql")[0]


def declared(env: jinja2.Environment) -> dict[str, list[tuple[str, object]]]:
    """Every macro of sql/macros.sql: its (parameter, default) list, read
    from the template's syntax tree, checked against the macro objects an
    app file imports (their arguments)."""
    tree = {m.name: parameters(m) for m in env.parse(macros_source(env)).find_all(nodes.Macro)}
    module = env.get_template("tenantdb/macros.sql").module
    imported = {k: getattr(module, k) for k in dir(module) if isinstance(getattr(module, k), jinja2.runtime.Macro)}
    assert sorted(imported) == sorted(tree)
    for name, macro in imported.items():
        assert list(macro.arguments) == [p for p, _ in tree[name]], name
    return tree


def signature_problems(text: str, macros: dict[str, list[tuple[str, object]]]) -> list[str]:
    """What the page says about the macros that is not so."""
    public, internal = public_sections(text), internal_names(text)
    problems = [f"{n}: on the page but not in sql/macros.sql" for n in sorted(set(public) | set(internal)) if n not in macros]
    problems += [f"{n}: in sql/macros.sql but on the page neither as public nor as internal"
                 for n in sorted(macros) if n not in public and n not in internal]
    problems += [f"{n}: listed as public and as internal" for n in sorted(set(public) & set(internal))]
    problems += [f"{n}: named by the issue as public, but not public on the page" for n in sorted(NAMED_PUBLIC - set(public))]
    for name, body in public.items():
        if name not in macros:
            continue
        documented = signature(name, body)
        if isinstance(documented, str):
            problems.append(documented)
            continue
        if documented != macros[name]:
            problems.append(f"{name}: the page says {documented}, sql/macros.sql declares {macros[name]}")
        prose = body.split("```", 1)[0]
        problems += [f"{name}: parameter {p} is not explained (`{p}`)" for p, _ in macros[name] if f"`{p}`" not in
                     prose.replace(re.search(r"^`m\..*`$", prose, re.M).group(0), "")]
    return problems


def tag_problems(text: str, source: str) -> list[str]:
    """The comment of each macro in sql/macros.sql says (public) or
    (internal), as the page does: who edits a macro sees whether its
    rendering is a promise."""
    tags = dict(re.findall(r"^\{#- (\w+) \((public|internal)\)", source, re.M))
    page = {n: "public" for n in public_sections(text)} | {n: "internal" for n in internal_names(text)}
    return [f"{n}: sql/macros.sql says ({tags.get(n, 'nothing')}), docs/macros.md says {kind}"
            for n, kind in sorted(page.items()) if tags.get(n) != kind]


def example_problems(text: str) -> list[str]:
    """A public macro without an example, an example calling an internal
    macro or one that is not an app file as an app team writes it."""
    public = public_sections(text)
    sql_blocks = blocks(text, "sql")
    problems = [] if sql_blocks else ["the page has no ```sql example"]
    calling = [b for b in sql_blocks if CALL.search(b)]
    if len(calling) < len(public):
        problems.append(f"{len(calling)} examples call a macro, for {len(public)} public macros")
    for name, body in public.items():
        if not any(f"m.{name}(" in b for b in blocks(body, "sql")):
            problems.append(f"{name}: no example in its section calls m.{name}(...)")
    for block in sql_blocks:
        lines = block.splitlines()
        called = set(re.findall(r"\{\{-?\s*m\.(\w+)", block))
        if called and (len(lines) < 2 or lines[1] != IMPORT):
            problems.append(f"{lines[0]}: its second line is not {IMPORT}")
        problems += [f"{lines[0]}: calls m.{n}, which is not public" for n in sorted(called - set(public) - {"api_version"})]
    return problems


def current_version(env: jinja2.Environment) -> int:
    return int(env.from_string(IMPORT + "{{ m.api_version }}").render(target="postgres", api="public"))


def render_call(env: jinja2.Environment, call: str) -> str:
    return env.from_string(IMPORT + "{{ " + call + " }}").render(target="postgres", api="public")


def doc_calls(text: str) -> list[str]:
    """Each macro call of the examples, its whitespace collapsed (the pin's key)."""
    return sorted({" ".join(c.split()) for b in blocks(text, "sql") for c in CALL.findall(b)})


def pin_path(version: int) -> Path:
    return FIXTURES / f"macros_api_v{version}.json"


def pin_problems(pin: dict, env: jinja2.Environment) -> list[str]:
    changed = []
    for call, rendered in pin["calls"].items():
        now = render_call(env, call)
        if now != rendered:
            changed.append(f"{call}\n  pinned: {rendered!r}\n  now:    {now!r}")
    return [f"{CHANGED}:\n" + "\n".join(changed)] if changed else []


def covered(calls: list[str], macros: dict[str, list[tuple[str, object]]]) -> dict[str, set[str]]:
    """The parameters of each macro that some call passes (by position or name)."""
    found: dict[str, set[str]] = {}
    for call in calls:
        node = next(jinja2.Environment().parse("{{ " + call + " }}").find_all(nodes.Call))
        name = node.node.attr
        params = [p for p, _ in macros[name]]
        found.setdefault(name, set()).update(params[: len(node.args)])
        found[name].update(k.key for k in node.kwargs)
    return found


# -- fixtures ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def app_env(tmp_path_factory) -> jinja2.Environment:
    """The jinja environment an app project's files are rendered in."""
    root = make_app(tmp_path_factory.mktemp("macros"), files={})
    env = Renderer(Target(), app=load(root)).app_env
    assert env is not None
    return env


@pytest.fixture(scope="module")
def page() -> str:
    return DOC.read_text(encoding="utf-8")


# -- the page against sql/macros.sql ------------------------------------------------

def test_every_macro_is_on_the_page_and_each_public_signature_is_the_declared_one(page: str, app_env) -> None:
    macros = declared(app_env)
    assert len(public_sections(page)) >= len(NAMED_PUBLIC)
    problems = signature_problems(page, macros) + tag_problems(page, macros_source(app_env))
    assert not problems, "docs/macros.md and sql/macros.sql disagree:\n" + "\n".join(problems)


def test_every_public_macro_has_an_example_an_app_file_as_written(page: str) -> None:
    problems = example_problems(page)
    assert not problems, "docs/macros.md:\n" + "\n".join(problems)


def test_the_checks_see_a_wrong_signature_an_undocumented_macro_and_a_missing_example(page: str, app_env) -> None:
    """The checkers' own negative control, on edited copies of the page."""
    macros = declared(app_env)
    default = page.replace("`m.personal_policies(table, column='user_id', writable=false)`",
                           "`m.personal_policies(table, column='user_id', writable=true)`")
    assert any(p.startswith("personal_policies: the page says") for p in signature_problems(default, macros))
    order = page.replace("`m.metered(table, feature)`", "`m.metered(feature, table)`")
    assert any(p.startswith("metered: the page says") for p in signature_problems(order, macros))
    unexplained = page.replace("- `feature`: the catalog feature", "- feature: the catalog feature")
    assert "metered: parameter feature is not explained (`feature`)" in signature_problems(unexplained, macros)
    flipped = macros_source(app_env).replace("{#- metered (public)", "{#- metered (internal)")
    assert tag_problems(page, flipped) == ["metered: sql/macros.sql says (internal), docs/macros.md says public"]
    unlisted = page.replace("- `linked_person_policies`:", "- linked_person_policies:")
    assert ("linked_person_policies: in sql/macros.sql but on the page neither as public nor as internal"
            in signature_problems(unlisted, macros))
    without = re.sub(r"```sql\n-- functions/0001_notes_meter.sql\n.*?```\n", "", page, flags=re.S)
    assert without != page
    assert "metered: no example in its section calls m.metered(...)" in example_problems(without)
    no_examples = re.sub(r"```sql\n.*?```\n", "", page, flags=re.S)
    assert f"0 examples call a macro, for {len(public_sections(page))} public macros" in example_problems(no_examples)
    internal = page.replace("{{ m.updated_at('app.note_preferences') }}", "{{ m.catalog_policies('app.note_templates') }}")
    assert "-- functions/0001_notes.sql: calls m.catalog_policies, which is not public" in example_problems(internal)
    assert example_problems("# no examples\n\n## Public macros\n\n## Internal macros\n") == ["the page has no ```sql example"]


# -- the version and the pins ---------------------------------------------------------

def test_api_version_renders_as_documented_and_has_its_pin(page: str, app_env) -> None:
    version = current_version(app_env)
    stated = re.search(r"`\{\{ m\.api_version \}\}`\s+renders `(\d+)`", page)
    assert stated, "docs/macros.md does not say what {{ m.api_version }} renders"
    assert int(stated.group(1)) == version, f"docs/macros.md documents version {stated.group(1)}; m.api_version is {version}"
    assert f"**version {version}**" in page
    assert re.search(rf"^\| {version} \|", section(page, "The version and its promise"), re.M), \
        f"the version table of docs/macros.md has no row for version {version}"
    assert pin_path(version).exists(), f"api_version {version} has no {pin_path(version).relative_to(ROOT)}"
    pin = json.loads(pin_path(version).read_text())
    assert pin["api_version"] == version


def test_every_pinned_call_renders_as_it_did_when_its_version_was_released(app_env) -> None:
    pin = json.loads(pin_path(current_version(app_env)).read_text())
    assert len(pin["calls"]) >= 17
    problems = pin_problems(pin, app_env)
    assert not problems, "\n".join(problems)


def test_the_pin_holds_every_example_call_and_a_call_with_every_parameter(page: str, app_env) -> None:
    pin = json.loads(pin_path(current_version(app_env)).read_text())
    unpinned = [c for c in doc_calls(page) if c not in pin["calls"]]
    assert not unpinned, f"examples not in {pin_path(current_version(app_env)).name}: {unpinned} " \
                         "(PYTHONPATH=. python tests/test_macros_api.py pins them)"
    macros = declared(app_env)
    passed = covered(list(pin["calls"]), macros)
    missing = {name: sorted({p for p, _ in macros[name]} - passed.get(name, set()))
               for name in public_sections(page)}
    assert not {k: v for k, v in missing.items() if v}, f"parameters no pinned call passes: {missing}"


def test_a_changed_rendering_is_reported_with_the_promise(app_env) -> None:
    """The pin check's own negative control: a pinned text that differs
    from today's rendering is named, with what to do."""
    call = "m.updated_at('app.notes')"
    problems = pin_problems({"api_version": 1, "calls": {call: render_call(app_env, call).replace("before", "after")}},
                            app_env)
    assert len(problems) == 1 and problems[0].startswith(CHANGED) and call in problems[0]
    assert pin_problems({"api_version": 1, "calls": {call: render_call(app_env, call)}}, app_env) == []


# -- the examples, run as written ---------------------------------------------------------

def rollback_files(files: dict[str, str]) -> None:
    for path in files:
        if path.startswith("migrations/") and not path.endswith(".rollback.sql"):
            assert path.replace(".sql", ".rollback.sql") in files, f"the example {path} has no rollback on the page"


@pytest.fixture
def shop(page: str, tmp_path: Path, dsn: str) -> tuple[Engine, str]:
    """The examples' app project, migrated and seeded onto a database the package is applied to."""
    files = example_files(page)
    rollback_files(files)
    root = make_app(tmp_path, files=files)
    engine = Engine(dsn, Renderer(Target(), app=load(root)), echo=lambda _line: None)
    engine.migrate()
    engine.seed()
    return engine, dsn


def rows(dsn: str, query: str, params: tuple | None = None) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchall()


POLICIES = """
select p.polname, p.polpermissive, p.polcmd, array(select r::regrole::text from unnest(p.polroles) r order by 1),
       coalesce(pg_get_expr(p.polqual, p.polrelid), ''), coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '')
  from pg_policy p where p.polrelid = %s::regclass order by 1
"""
TRIGGERS = """
select t.tgname, t.tgfoid::regproc::text, pg_get_triggerdef(t.oid), t.tgdeferrable, t.tginitdeferred
  from pg_trigger t where t.tgrelid = %s::regclass and not t.tgisinternal order by 1
"""


def policies(dsn: str, table: str) -> dict[str, tuple]:
    return {r[0]: r[1:] for r in rows(dsn, POLICIES, (table,))}


def triggers(dsn: str, table: str) -> dict[str, tuple]:
    return {r[0]: r[1:] for r in rows(dsn, TRIGGERS, (table,))}


LEFT = """
select array(select c.oid::regclass::text from pg_class c
              where c.oid in (to_regclass('app.notes'), to_regclass('app.note_events'), to_regclass('app.note_preferences'),
                              to_regclass('app.note_templates'), to_regclass('public.note_counts'))),
       array(select p.oid::regproc::text from pg_proc p where p.proname like 'shop%%' or p.proname = 'note_slug')
"""


def test_the_examples_migrate_seed_verify_clean_and_roll_back(shop: tuple[Engine, str]) -> None:
    engine, dsn = shop
    status = engine.status()
    assert "shop:0001_notes" in status.applied and not status.pending and not status.stale_repeatables
    assert sorted(r[0] for r in rows(dsn, "select path from tenantdb.repeatables where path like 'shop:%'")) == \
        sorted(f"shop:{p}" for p in example_files(DOC.read_text()) if p.startswith(("functions/", "policies/")))
    problems = verify.problems(engine)
    assert not problems, f"tenantdb verify on the examples of docs/macros.md: {problems}"
    tables, functions = rows(dsn, LEFT)[0]
    assert len(tables) == 5 and len(functions) == 5, (tables, functions)
    assert engine.rollback() == 1  # the page's rollback: the app's change, and nothing of the package's
    assert rows(dsn, LEFT)[0] == ([], [])
    assert engine.status().pending == ["shop:0001_notes"]


def test_the_examples_leave_what_the_page_says_in_the_catalog(shop: tuple[Engine, str]) -> None:
    _, dsn = shop
    forced = dict(rows(dsn, "select c.relname::text, c.relrowsecurity and c.relforcerowsecurity from pg_class c "
                            "where c.relnamespace = 'app'::regnamespace and c.relname like 'note%%' and c.relkind = 'r'"))
    assert forced == {"notes": True, "note_events": True, "note_preferences": True, "note_templates": True}

    # tenant_policies: one permissive policy per role and command, the lookup an InitPlan
    notes = policies(dsn, "app.notes")
    by_role_command = sorted((roles[0], cmd) for name, (permissive, cmd, roles, *_)
                             in notes.items() if permissive and name != "platform_select")
    assert by_role_command == sorted((role, cmd) for role in ("authenticated", "organization_scoped") for cmd in "rawd")
    assert notes["tenant_select"][:3] == (True, "r", ["authenticated"])
    assert "( SELECT private.org_ids_with_permission('tenant.read'::text) AS" in notes["tenant_select"][3]
    assert "'note.delete'" in notes["tenant_delete"][3] and "'note.write'" in notes["tenant_update"][4]
    assert notes["scoped_insert"][:3] == (True, "a", ["organization_scoped"]) and "[1]" in notes["scoped_insert"][4]
    assert len(policies(dsn, "app.note_events")) == 8
    # policy, restrictive; platform_read
    assert notes["notes_archived_read_only"] == (False, "w", ["authenticated", "organization_scoped"],
                                                 "(status <> 'archived'::text)", "true")
    assert notes["platform_select"][:3] == (True, "r", ["platform_staff"])
    assert "has_system_permission('platform.tenant.read'" in notes["platform_select"][3]
    # personal_policies(writable=true); rls_on + policy
    mine = policies(dsn, "app.note_preferences")
    assert sorted(mine) == ["owner_select", "owner_update"]
    assert mine["owner_update"][1:3] == ("w", ["authenticated", "organization_scoped"])
    assert "( SELECT auth.uid() AS uid)" in mine["owner_update"][3] and mine["owner_update"][3] == mine["owner_update"][4]
    assert policies(dsn, "app.note_templates") == {
        "note_templates_select": (True, "r", ["authenticated", "organization_scoped"], "true", "")}

    # table_grants (and the column grants after it), platform_read's select, view_grants
    def can(role: str, obj: str, privilege: str) -> bool:
        return rows(dsn, "select has_table_privilege(%s, %s, %s)", (role, obj, privilege))[0][0]

    assert [can("authenticated", "app.notes", p) for p in ("select", "insert", "update", "delete")] == \
        [True, False, False, True]
    assert rows(dsn, "select has_column_privilege('authenticated', 'app.notes', 'title', 'insert'), "
                     "has_column_privilege('authenticated', 'app.notes', 'created_by', 'insert')")[0] == (True, False)
    assert not any(can("anon", f"app.{t}", "select") for t in ("notes", "note_events", "note_preferences", "note_templates"))
    assert all(can("service_role", "app.notes", p) for p in ("select", "insert", "update", "delete"))
    assert can("organization_scoped", "app.notes", "delete")  # mirrored from authenticated by migrate
    assert can("platform_staff", "app.notes", "select") and not can("platform_staff", "app.note_events", "select")
    assert [can("authenticated", "app.note_templates", p) for p in ("select", "insert")] == [True, False]
    assert [can("authenticated", "public.note_counts", p) for p in ("select", "insert")] == [True, False]
    assert not can("anon", "public.note_counts", "select")
    assert rows(dsn, "select reloptions from pg_class where oid = 'public.note_counts'::regclass")[0][0] == \
        ["security_invoker=true"]

    # the trigger macros
    on_notes = triggers(dsn, "app.notes")
    assert sorted(on_notes) == ["audit_note_archive", "gate_and_meter", "set_updated_at", "status_transition", "trim_title"]
    assert on_notes["gate_and_meter"][0] == "private.gate_and_meter" and on_notes["gate_and_meter"][2:] == (True, True)
    assert "AFTER INSERT OR DELETE OR UPDATE OF organization_id" in on_notes["gate_and_meter"][1]
    assert "('max_notes')" in on_notes["gate_and_meter"][1]
    assert "BEFORE UPDATE ON app.notes FOR EACH ROW" in on_notes["set_updated_at"][1]
    assert "'draft>published', 'draft>archived', 'published>archived'" in on_notes["status_transition"][1]
    assert "AFTER UPDATE OF status ON app.notes FOR EACH ROW WHEN ((new.status = 'archived'::text))" in \
        on_notes["audit_note_archive"][1] and "('shop.note_archive')" in on_notes["audit_note_archive"][1]
    assert "BEFORE INSERT OR UPDATE OF title" in on_notes["trim_title"][1]
    assert triggers(dsn, "app.note_events")["append_only"][0] == "private.refuse_change"
    assert sorted(triggers(dsn, "app.note_preferences")) == ["set_updated_at"]

    # pinned, definer, private_grants, api_function, row_trigger's revoke
    functions = {r[0]: r[1:] for r in rows(dsn, """
        select p.oid::regproc::text, p.prosecdef, p.proconfig, obj_description(p.oid, 'pg_proc') is not null,
               array(select r from unnest(array['public', 'anon', 'authenticated', 'service_role']) r
                      where case r when 'public' then exists (select from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                                                               where a.grantee = 0 and a.privilege_type = 'EXECUTE')
                                  else has_function_privilege(r, p.oid, 'execute') end)
          from pg_proc p
         where p.proname in ('note_slug', 'shop_trim_note_title', 'shop_publish_note', 'shop_purge_archived_notes')""")}
    pinned = ["search_path=pg_catalog, pg_temp"]
    assert functions["app.note_slug"][:3] == (False, pinned, True)
    assert functions["private.shop_trim_note_title"] == (False, pinned, True, [])
    assert functions["private.shop_publish_note"] == (True, pinned, True, ["authenticated", "service_role"])
    assert functions["private.shop_purge_archived_notes"] == (True, pinned, True, ["service_role"])
    assert functions["shop_publish_note"] == (False, pinned, True, ["authenticated", "service_role"])  # public: unqualified


def test_the_examples_work_for_a_member(shop: tuple[Engine, str]) -> None:
    """A member's requests through the examples: the title trimmed, the
    note published through the API function and recorded, a move the state
    machine does not allow refused, the history append-only, the archive
    audited, an archived note read-only, the note counted."""
    _, dsn = shop
    uid = "00000000-0000-4000-8000-0000000000b1"
    claims = json.dumps({"sub": uid, "role": "authenticated"})
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("insert into auth.users (id, email) values (%s, 'b@shop.test')", (uid,))

        def as_user(query: str, params: tuple = ()) -> list[tuple]:
            with conn.transaction():
                conn.execute("set local role authenticated")
                conn.execute("select set_config('request.jwt.claims', %s, true)", (claims,))
                cur = conn.execute(query, params)
                return cur.fetchall() if cur.description else []

        org = as_user("select public.create_organization('Shop B', 'shop-b')")[0][0]
        note = as_user("insert into app.notes (organization_id, title) values (%s, '  First  ') returning id", (org,))[0][0]
        as_user("select public.shop_publish_note(%s, %s)", (org, note))
        assert as_user("select title, status from app.notes") == [("First", "published")]
        assert as_user("select what from app.note_events") == [("published",)]
        assert as_user("select status, notes from public.note_counts") == [("published", 1)]
        with pytest.raises(psycopg.errors.CheckViolation) as refused:
            as_user("update app.notes set status = 'draft'")
        assert refused.value.diag.constraint_name == "notes_status_transition"
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as refused:
            conn.execute("update app.note_events set what = 'edited'")  # the owner too
        assert refused.value.diag.constraint_name == "note_events_append_only"
        as_user("update app.notes set status = 'archived'")
        assert conn.execute("select action, actor_id::text from audit.platform_actions where target_table = 'app.notes'"
                            ).fetchall() == [("shop.note_archive.update", uid)]
        assert as_user("update app.notes set title = 'Second' returning id") == []  # restrictive: archived is read-only
        assert conn.execute("select quantity from usage.live_counts where organization_id = %s and meter_key = 'notes'",
                            (org,)).fetchone() == (1,)
        assert conn.execute("select app.note_slug('Hello, World!')").fetchone() == ("hello-world",)


# -- pinning ------------------------------------------------------------------------------

def pin_new_calls(extra: list[str]) -> None:
    """Add the examples' calls (and extra calls) that are not pinned yet to
    the current version's pin, rendered now; a pinned call is never changed."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        env = Renderer(Target(), app=load(make_app(Path(tmp), files={}))).app_env
        version = current_version(env)
        path = pin_path(version)
        pin = json.loads(path.read_text()) if path.exists() else {"api_version": version, "calls": {}}
        new = [c for c in doc_calls(DOC.read_text(encoding="utf-8")) + [" ".join(c.split()) for c in extra]
               if c not in pin["calls"]]
        for call in new:
            pin["calls"][call] = render_call(env, call)
        pin["calls"] = dict(sorted(pin["calls"].items()))
        path.write_text(json.dumps(pin, indent=2, ensure_ascii=False) + "\n")
    print(f"{path.relative_to(ROOT)}: pinned {len(new)} new call(s)" + "".join(f"\n  {c}" for c in new), file=sys.stderr)


if __name__ == "__main__":
    pin_new_calls(sys.argv[1:])
