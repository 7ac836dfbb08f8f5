"""tenantdb adopt: take over a database deployed from an export.

Like Flyway's `baseline` or Alembic's `stamp`, but checked: a database
deployed with `tenantdb export sqitch` + `sqitch deploy`, or with `tenantdb
export supabase` + the Supabase CLI (or psql), is recorded as migrated only
if it matches the package, so that status, verify, seed and migrate work on
it afterwards. In an app project the app's changes are adopted with the
package's, by the same checks (the app's sqitch project, or its Supabase
migrations, in the registry; its objects; its repeatables; the reference
migrated with the app).

What "matches" means, for the changes being adopted (all of them, or up to
--to, or up to the last one the deploy tool's registry lists):

- options: the API schema exists and holds the package's API functions,
  and the tables only one --target creates say it was deployed for this
  target;
- the registry (where there is one): sqitch's `sqitch.changes` (project
  tenantdb, then the app's project) or Supabase's
  `supabase_migrations.schema_migrations` lists exactly the first N
  changes of the package (then of the app), and for sqitch each deploy
  script's SHA-1 is the one this package's export writes (so the migration
  SQL itself, columns and constraints included, is byte for byte ours);
- objects: every schema, table, view and named index the adopted
  migrations create exists, and none that a later or left-out change
  creates does;
- repeatables: every functions/ and policies/ file, applied again inside a
  savepoint that is rolled back, leaves the catalog exactly as it was:
  function definitions (pg_get_functiondef), their privileges and comments,
  triggers, policies, views, indexes, constraints, table and column
  privileges, row level security flags and comments — Postgres compares
  its own rendering of the definitions, so formatting cannot matter; no
  function in private and no overload of a package function that no
  adopted file defines.

- the reference: the catalog (columns, defaults, constraints, indexes,
  privileges, owners, policies, triggers, functions) equals that of a
  scratch database migrated from the package with the same changes, target
  and API schema, made for the comparison and dropped (the role needs
  CREATEDB). Comments, the auth schema, usage partitions, default
  privileges and the catalog-built usage view are not compared.

The checks run under tenantdb's migration lock in a transaction that is
rolled back; when they pass, they run again in the transaction that records
the changes (yoyo's rows, tenantdb.changes and tenantdb.repeatables with the
checksums migrate would have recorded, and the target). Any difference:
nothing is recorded, exit 1, the differences listed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from . import export
from .db import connect
from .engine import Engine
from .errors import TenantdbError, UsageProblem
from .project import PACKAGE
from .render import Change, Renderer, Target, history_key

_RELATION_KINDS = ("table", "view", "index")

# The catalog as the repeatables shape it: one row per (object, aspect).
# Bookkeeping and registries are left out, so are extension members.
# Privileges are compared as sets (each ACL's entries in sorted order): the
# same grants made in another order, as mirror_client_grants appends
# organization_scoped's after a file re-grants authenticated's, are the
# same privileges.
FINGERPRINT = r"""
with ns as (
  select oid, nspname from pg_catalog.pg_namespace
   where nspname not in ('pg_catalog', 'information_schema', 'tenantdb', 'sqitch', 'supabase_migrations')
     and nspname !~ '^pg_(toast|temp)'
), ext as (
  select classid, objid from pg_catalog.pg_depend where deptype = 'e'
), rel as (
  select c.* from pg_catalog.pg_class c join ns on ns.oid = c.relnamespace
   where not exists (select from ext where ext.classid = 'pg_catalog.pg_class'::regclass and ext.objid = c.oid)
)
select 'function ' || p.oid::regprocedure::text, a.aspect, a.value
  from pg_catalog.pg_proc p join ns on ns.oid = p.pronamespace
  cross join lateral (values ('definition', md5(pg_catalog.pg_get_functiondef(p.oid))),
                             ('privileges', case when p.proacl is null then 'default' else coalesce((select pg_catalog.string_agg(a::text, ',' order by a::text) from pg_catalog.unnest(p.proacl) a), '') end),
                             ('comment', coalesce(pg_catalog.obj_description(p.oid, 'pg_proc'), ''))) a (aspect, value)
 where p.prokind in ('f', 'p')
   and not exists (select from ext where ext.classid = 'pg_catalog.pg_proc'::regclass and ext.objid = p.oid)
union all
select 'trigger ' || t.tgname || ' on ' || t.tgrelid::regclass::text, 'definition',
       pg_catalog.pg_get_triggerdef(t.oid) || ' ' || t.tgenabled::text
  from pg_catalog.pg_trigger t join rel on rel.oid = t.tgrelid
 where not t.tgisinternal
union all
select 'policy ' || pol.polname || ' on ' || pol.polrelid::regclass::text, 'definition',
       concat_ws(' | ', pol.polcmd::text, pol.polpermissive::text, pol.polroles::regrole[]::text,
                 pg_catalog.pg_get_expr(pol.polqual, pol.polrelid), pg_catalog.pg_get_expr(pol.polwithcheck, pol.polrelid))
  from pg_catalog.pg_policy pol join rel on rel.oid = pol.polrelid
union all
select case when rel.relkind in ('v', 'm') then 'view ' when rel.relkind = 'i' then 'index ' else 'table ' end
       || rel.oid::regclass::text, a.aspect, a.value
  from rel
  cross join lateral (values
    ('definition', case when rel.relkind in ('v', 'm') then md5(pg_catalog.pg_get_viewdef(rel.oid))
                        when rel.relkind = 'i' then pg_catalog.pg_get_indexdef(rel.oid) else '' end),
    ('privileges', case when rel.relacl is null then 'default' else coalesce((select pg_catalog.string_agg(a::text, ',' order by a::text) from pg_catalog.unnest(rel.relacl) a), '') end),
    ('row level security', rel.relrowsecurity::text || ' force ' || rel.relforcerowsecurity::text),
    ('comment', coalesce(pg_catalog.obj_description(rel.oid, 'pg_class'), ''))) a (aspect, value)
 where rel.relkind in ('r', 'p', 'v', 'm', 'f', 'i')
union all
select 'column ' || rel.oid::regclass::text || '.' || quote_ident(att.attname), a.aspect, a.value
  from rel join pg_catalog.pg_attribute att on att.attrelid = rel.oid and att.attnum > 0 and not att.attisdropped
  cross join lateral (values ('privileges', case when att.attacl is null then 'default' else coalesce((select pg_catalog.string_agg(a::text, ',' order by a::text) from pg_catalog.unnest(att.attacl) a), '') end),
                             ('comment', coalesce(pg_catalog.col_description(rel.oid, att.attnum), ''))) a (aspect, value)
 where rel.relkind in ('r', 'p', 'v', 'm', 'f')
   and (att.attacl is not null or pg_catalog.col_description(rel.oid, att.attnum) is not null)
union all
select 'column ' || rel.oid::regclass::text || '.' || quote_ident(att.attname), 'shape',
       concat_ws(' ', pg_catalog.format_type(att.atttypid, att.atttypmod), case when att.attnotnull then 'not null' end,
                 'default ' || pg_catalog.pg_get_expr(def.adbin, def.adrelid), case when att.attgenerated <> '' then 'generated' end)
  from rel join pg_catalog.pg_attribute att on att.attrelid = rel.oid and att.attnum > 0 and not att.attisdropped
  left join pg_catalog.pg_attrdef def on def.adrelid = rel.oid and def.adnum = att.attnum
 where rel.relkind in ('r', 'p', 'f') and not rel.relispartition
union all
select case when rel.relkind in ('v', 'm') then 'view ' else 'table ' end || rel.oid::regclass::text, 'owner',
       case when rel.relowner = (select oid from pg_catalog.pg_roles where rolname = current_user) then 'the adopting role'
            else rel.relowner::regrole::text end
  from rel where rel.relkind in ('r', 'p', 'v', 'm') and not rel.relispartition
union all
select 'function ' || p.oid::regprocedure::text, 'owner',
       case when p.proowner = (select oid from pg_catalog.pg_roles where rolname = current_user) then 'the adopting role'
            else p.proowner::regrole::text end || case when p.prosecdef then ' security definer' else '' end
  from pg_catalog.pg_proc p join ns on ns.oid = p.pronamespace
 where not exists (select from ext where ext.classid = 'pg_catalog.pg_proc'::regclass and ext.objid = p.oid)
union all
select 'default privileges in ' || coalesce(d.defaclnamespace::regnamespace::text, 'the database'), d.defaclobjtype::text,
       case when d.defaclacl is null then 'default' else coalesce((select pg_catalog.string_agg(a::text, ',' order by a::text) from pg_catalog.unnest(d.defaclacl) a), '') end
  from pg_catalog.pg_default_acl d
union all
select 'constraint ' || con.conname || ' on ' || con.conrelid::regclass::text, 'definition',
       pg_catalog.pg_get_constraintdef(con.oid)
  from pg_catalog.pg_constraint con join rel on rel.oid = con.conrelid
union all
select 'schema ' || quote_ident(ns.nspname), a.aspect, a.value
  from ns join pg_catalog.pg_namespace n on n.oid = ns.oid
  cross join lateral (values ('privileges', case when n.nspacl is null then 'default' else coalesce((select pg_catalog.string_agg(a::text, ',' order by a::text) from pg_catalog.unnest(n.nspacl) a), '') end),
                             ('comment', coalesce(pg_catalog.obj_description(n.oid, 'pg_namespace'), ''))) a (aspect, value)
"""


@dataclass
class Difference:
    what: str  # e.g. "function private.load_catalog(jsonb)"
    detail: str

    def __str__(self) -> str:
        return f"{self.what}: {self.detail}"


@dataclass
class Report:
    changes: list[Change] = field(default_factory=list)  # what is (or would be) recorded
    source: str = ""  # how the deployed changes were known
    differences: list[Difference] = field(default_factory=list)
    managed: int = 0  # changes tenantdb already records (then nothing else is done)

    def as_dict(self) -> dict:
        return {"managed": self.managed, "source": self.source, "changes": [c.id for c in self.changes],
                "differences": [{"object": d.what, "detail": d.detail} for d in self.differences]}


# -- what the deploy tools recorded ------------------------------------------
def _sqitch_registry(conn: psycopg.Connection, projects: list[str]) -> list[tuple[str, str, str | None]] | None:
    """(project, change name, script hash) of the deployed changes of the
    sqitch projects (the package's, then an app's), each project's in order;
    None without a registry or without the package's project in it."""
    if conn.execute("select to_regclass('sqitch.changes') is null").fetchone()[0]:
        return None
    rows = conn.execute("select project, change, script_hash from sqitch.changes where project = any (%s) "
                        "order by array_position(%s, project::text), committed_at, change_id", (projects, projects)).fetchall()
    return [(r[0], r[1], r[2]) for r in rows] if any(r[0] == PACKAGE for r in rows) else None


def _supabase_registry(conn: psycopg.Connection) -> list[tuple[str, str | None]] | None:
    """(version, name) of the Supabase CLI's applied migrations, in order; None without one."""
    if conn.execute("select to_regclass('supabase_migrations.schema_migrations') is null").fetchone()[0]:
        return None
    has_name = conn.execute(
        "select exists (select from pg_catalog.pg_attribute where attrelid = 'supabase_migrations.schema_migrations'::regclass "
        "and attname = 'name' and not attisdropped)").fetchone()[0]
    rows = conn.execute("select version::text, " + ("name::text" if has_name else "null::text")
                        + " from supabase_migrations.schema_migrations order by version").fetchall()
    return [(r[0], r[1]) for r in rows] or None


def _deployed(conn: psycopg.Connection, everything: list[Change], found: list[Difference]) -> tuple[str, list[str] | None]:
    """The source and the ids of the changes the registries say were deployed
    (None: no registry names any); registry problems go to found."""
    sources: list[tuple[str, list[str]]] = []
    by_id = {c.id: c for c in everything}
    projects = [PACKAGE] + sorted({c.project for c in everything if c.is_app})  # sqitch: the app's is a project of its own
    sqitch = _sqitch_registry(conn, projects)
    if sqitch is not None:
        ids = []
        for project, name, script_hash in sqitch:
            cid = history_key(project, name)
            change = by_id.get(cid)
            if change is None:
                found.append(Difference(f"sqitch change {cid}", "deployed, but not a change of "
                                        + ("this package" if project == PACKAGE else f"app {project}")))
                continue
            ids.append(cid)
            if script_hash and script_hash != export.sqitch_script_hash(change):
                found.append(Difference(
                    f"sqitch change {cid}",
                    "deployed from another deploy script than this package's export writes (another release, "
                    "--target or --api-schema): adopt with the release and options the export was made with"))
        sources.append(("sqitch registry (sqitch.changes)", ids))
    supabase = _supabase_registry(conn)
    if supabase is not None:
        by_version = {export.supabase_version(c)[0]: c for c in everything}
        ids = []
        for version, name in supabase:
            change = by_version.get(version)
            if change is None:
                continue  # the project's own migrations: not tenantdb's
            if name is not None and name != export.supabase_version(change)[1]:
                found.append(Difference(f"Supabase migration {version}", f"named {name}, but this package's {version} is {change.id}"))
                continue
            ids.append(change.id)
        if ids:
            sources.append(("Supabase registry (supabase_migrations.schema_migrations)", ids))
    if not sources:
        return "the objects only (no sqitch or Supabase registry names a tenantdb change)", None
    if len(sources) > 1 and sources[0][1] != sources[1][1]:
        found.append(Difference("registries", f"sqitch lists {', '.join(sources[0][1]) or 'nothing'}, "
                                              f"Supabase lists {', '.join(sources[1][1]) or 'nothing'}"))
    return " and ".join(s for s, _ in sources), sources[0][1]


# -- the checks ----------------------------------------------------------------
def _exists(conn: psycopg.Connection, kind: str, name: str) -> bool:
    if kind in _RELATION_KINDS:
        query = "select to_regclass(%s) is not null"
    elif kind == "schema":
        query = "select to_regnamespace(%s) is not null"
    else:
        query = ("select exists (select from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace "
                 "where n.nspname || '.' || p.proname = %s)")
    return conn.execute(query, (name,)).fetchone()[0]


def _options(conn: psycopg.Connection, renderer: Renderer, selected: list[Change], found: list[Difference]) -> None:
    """--api-schema and --target: does the database look deployed with them?"""
    api = renderer.target.api
    if not conn.execute("select to_regnamespace(%s) is not null", (api,)).fetchone()[0]:
        found.append(Difference(f"schema {api}", "the API schema (--api-schema) does not exist"))
    else:
        names = sorted({f for c in selected for f in c.functions if f.startswith(api + ".")})
        bare = [n.split(".", 1)[1] for n in names]
        if names and not conn.execute(
                "select exists (select from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace "
                "where n.nspname || '.' || p.proname = any (%s))", (names,)).fetchone()[0]:
            elsewhere = [r[0] for r in conn.execute(
                "select distinct n.nspname::text from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace "
                "where p.proname = any (%s) and n.nspname not in ('private', %s) order by 1", (bare, api)).fetchall()]
            hint = f"; the database has them in {', '.join(elsewhere)}: pass --api-schema {elsewhere[0]}" if elsewhere else ""
            found.append(Difference(f"schema {api}", f"none of the package's {len(names)} API functions is there{hint}"))
    mine = renderer.target.name
    other = "supabase" if mine == "postgres" else "postgres"
    ids = {c.id for c in selected}
    theirs = [c for c in Renderer(Target(other, api), root=renderer.root, app=renderer.app).changes() if c.id in ids]

    def tables(changes: list[Change]) -> set[str]:
        return {name for c in changes for kind, name, unconditional in export.change_objects(c)
                if kind == "table" and unconditional}

    mine_only, theirs_only = sorted(tables(selected) - tables(theirs)), sorted(tables(theirs) - tables(selected))
    present = [t for t in theirs_only if _exists(conn, "table", t)]
    if present:
        found.append(Difference("target", f"the database has {', '.join(present)}, which only --target {other} creates"))
    elif mine_only and not any(_exists(conn, "table", t) for t in mine_only):
        found.append(Difference("target", f"the database lacks {', '.join(mine_only)}, which --target {mine} creates: "
                                          f"deployed with --target {other}?"))


def _objects(conn: psycopg.Connection, selected: list[Change], others: list[Change], found: list[Difference]) -> None:
    """The adopted changes' objects exist; those of later or left-out changes
    do not. (Functions: compared one by one with the repeatables.)"""
    for change in selected:
        for kind, name, _ in export.change_objects(change):
            if kind != "function" and not _exists(conn, kind, name):
                found.append(Difference(f"{kind} {name}", f"missing ({change.id} creates it)"))
    for change in others:
        for kind, name, unconditional in export.change_objects(change):
            if unconditional and kind != "function" and _exists(conn, kind, name):
                found.append(Difference(f"{kind} {name}", f"exists, but {change.id}, which creates it, is not being adopted "
                                                          "(adopt up to it with --to, or drop --without)"))


def _fingerprint(conn: psycopg.Connection) -> dict[tuple[str, str], str]:
    return {(what, aspect): value for what, aspect, value in conn.execute(FINGERPRINT).fetchall()}


def _owner(what: str, selected: list[Change]) -> str:
    """The (last) file that makes an object of the fingerprint: the one
    defining a function, or naming a trigger, policy or constraint with
    its table; other objects: the repeatables."""
    kind, _, rest = what.partition(" ")
    reps = [r for c in selected for r in c.repeatables]
    if kind == "function":
        name = rest.split("(", 1)[0]
        paths = [r.path for r in reps if name in r.functions]
    elif " on " in rest:
        name, _, table = rest.partition(" on ")
        paths = [r.path for r in reps if name in r.sql and table in r.sql]
    else:
        paths = []
    return paths[-1] if paths else "the package's repeatables"


def _repeatables(engine: Engine, conn: psycopg.Connection, selected: list[Change], found: list[Difference]) -> None:
    """Apply the adopted changes' repeatables in a savepoint and compare the catalog before and after."""
    reps = [r for c in selected for r in c.repeatables]
    defined = {f for c in selected for f in c.functions}
    conn.execute("savepoint tenantdb_adopt")
    try:
        strays = engine.stray_overloads(conn, reps)
    except TenantdbError as exc:
        conn.execute("rollback to savepoint tenantdb_adopt")
        found.append(Difference("function signatures", str(exc)))
        strays = []
    for signature, path in strays:
        found.append(Difference(f"function {signature}", f"an overload {path} does not define (migrate would drop it)"))
        # dropped (in the savepoint) as migrate would, so the files apply as they would there
        conn.execute("savepoint tenantdb_adopt_file")
        try:
            conn.execute(f"drop function {signature}")
        except psycopg.Error:
            conn.execute("rollback to savepoint tenantdb_adopt_file")
        else:
            conn.execute("release savepoint tenantdb_adopt_file")
    rows = conn.execute(
        "select 'private.' || p.proname, p.oid::regprocedure::text from pg_catalog.pg_proc p "
        "where p.pronamespace = to_regnamespace('private') "
        "and not exists (select from pg_catalog.pg_depend d where d.objid = p.oid and d.deptype = 'e')").fetchall()
    found += [Difference(f"function {signature}", "in private, but no adopted file defines it")
              for name, signature in rows if name not in defined]
    before = _fingerprint(conn)
    for rep in reps:
        conn.execute("savepoint tenantdb_adopt_file")
        try:
            conn.execute(rep.sql.encode())
        except psycopg.Error as exc:
            conn.execute("rollback to savepoint tenantdb_adopt_file")
            diag = getattr(exc, "diag", None)
            found.append(Difference(rep.path, f"does not apply to this database: SQLSTATE {getattr(diag, 'sqlstate', '?')}: "
                                              f"{getattr(diag, 'message_primary', None) or str(exc).strip()}"))
        else:
            conn.execute("release savepoint tenantdb_adopt_file")
    after = _fingerprint(conn)
    conn.execute("rollback to savepoint tenantdb_adopt")
    objects_before = {what for what, _ in before}
    objects_after = {what for what, _ in after}
    for what in sorted(objects_after - objects_before):
        found.append(Difference(what, f"missing ({_owner(what, selected)} creates it)"))
    for what in sorted(objects_before - objects_after):
        found.append(Difference(what, f"the database has it, {_owner(what, selected)} drops it"))
    changed: dict[str, list[str]] = {}
    for key in sorted(set(before) & set(after)):
        if before[key] != after[key]:
            changed.setdefault(key[0], []).append(key[1])
    for what, aspects in changed.items():
        found.append(Difference(what, f"differs from {_owner(what, selected)} ({', '.join(aspects)})"))


# Left out of the comparison with the reference: what legitimately differs
# between two databases migrated from the same package — the auth schema
# (Supabase's own, or the shim), usage partitions (named by month, made when
# first needed), the wide usage view (rebuilt from the catalog by seed),
# comments, and the database's default privileges (Supabase sets its own).
_NOT_COMPARED = ("auth.", "usage.events_y", "public.organization_usage_summary")


def _comparable(fingerprint: dict[tuple[str, str], str]) -> dict[tuple[str, str], str]:
    def compared(what: str, aspect: str) -> bool:
        kind, _, name = what.partition(" ")
        table = name.split(" on ", 1)[-1]  # a trigger, policy or constraint: its table
        return (aspect != "comment" and kind != "default" and name != "auth"
                and not name.startswith(_NOT_COMPARED) and not table.startswith(_NOT_COMPARED))
    return {key: value for key, value in fingerprint.items() if compared(*key)}


def _reference(engine: Engine, conn: psycopg.Connection, selected: list[Change], found: list[Difference],
               cache: dict[str, dict[tuple[str, str], str]]) -> None:
    """Compare the database with a scratch database migrated from the package
    (the same changes, target and API schema): columns, defaults,
    constraints, indexes, privileges, owners, policies, triggers, functions.
    What the repeatables check cannot see (a dropped unique constraint, a
    grant to anon, a new column, a changed owner) shows here. The scratch
    database is made once per adopt: cache holds its fingerprint for the
    check that runs again when recording."""
    have = _comparable(_fingerprint(conn))
    if selected[-1].id in cache:
        _differences(cache[selected[-1].id], have, found)
        return
    scratch = f"tenantdb_adopt_{uuid.uuid4().hex[:12]}"
    try:
        with connect(engine.dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("create database {}").format(sql.Identifier(scratch)))
    except psycopg.Error as exc:
        found.append(Difference("reference", f"cannot create a scratch database to compare with ({exc.diag.message_primary}); "
                                "adopt needs a role with CREATEDB"))
        return
    try:
        scratch_dsn = make_conninfo(engine.dsn, dbname=scratch)
        with connect(scratch_dsn, autocommit=True) as c:
            if engine.renderer.target.name == "supabase":
                # Supabase's auth stands in: the postgres target's shim, with
                # the columns the adopted database's auth.users has.
                c.execute((engine.renderer.root / "sql" / "targets" / "postgres_auth_shim.sql").read_text().encode())
                for column in conn.execute(
                        "select format('%I %s', a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod)) "
                        "from pg_catalog.pg_attribute a where a.attrelid = to_regclass('auth.users') "
                        "and a.attnum > 0 and not a.attisdropped order by a.attnum").fetchall():
                    c.execute(f"alter table auth.users add column if not exists {column[0]}".encode())
        Engine(scratch_dsn, engine.renderer, echo=lambda _line: None, lock_timeout=engine.lock_timeout).migrate(to=selected[-1].id)
        with connect(scratch_dsn, autocommit=True) as c:
            c.execute("drop schema tenantdb cascade")  # the bookkeeping is not part of the comparison
            c.execute("set search_path = tenantdb")  # names print as on the adopted database's connection
            wanted = _comparable(_fingerprint(c))
    finally:
        with connect(engine.dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(scratch)))
    cache[selected[-1].id] = wanted
    _differences(wanted, have, found)


def _differences(wanted: dict[tuple[str, str], str], have: dict[tuple[str, str], str], found: list[Difference]) -> None:
    for key in sorted(set(wanted) | set(have)):
        what, aspect = key
        if key not in have:
            found.append(Difference(what, f"missing (a database migrated from the package has it: {aspect} {wanted[key][:120]})"))
        elif key not in wanted:
            found.append(Difference(what, f"not in the package ({aspect} {have[key][:120]})"))
        elif have[key] != wanted[key]:
            found.append(Difference(what, f"{aspect} differs: {have[key][:120]!r}, the package's: {wanted[key][:120]!r}"))


def _guess_to(conn: psycopg.Connection, selection: list[Change]) -> str | None:
    """Without a registry: the last change whose objects all exist, if every later one lacks some.
    Changes that create no object of their own (comments only) tell nothing and are left out."""
    selection = [c for c in selection if export.change_objects(c)]
    complete = [all(_exists(conn, kind, name) for kind, name, _ in export.change_objects(c)) for c in selection]
    for i in range(len(selection) - 1, -1, -1):
        if all(complete[: i + 1]) and not any(complete[i + 1:]):
            return selection[i].id if i < len(selection) - 1 else None
    return None


def inspect(engine: Engine, conn: psycopg.Connection, to: str | None,
            cache: dict[str, dict[tuple[str, str], str]] | None = None) -> Report:
    """Which changes would be adopted, and how the database differs from them.
    conn is in a transaction; the caller rolls it back (or commits the
    bookkeeping recorded after it)."""
    renderer = engine.renderer
    conn.execute("set local search_path = tenantdb")  # as yoyo's connection, on which migrate applies the SQL
    conn.execute(f"set local lock_timeout = {int(engine.lock_timeout * 1000)}")
    selection = list(engine.changes)
    everything = Renderer(renderer.target, root=renderer.root, app=renderer.app).changes()  # with those left out by --without
    ids = [c.id for c in selection]
    report = Report()
    found = report.differences
    source, deployed = _deployed(conn, everything, found)
    report.source = source
    if to is not None and to not in ids:
        raise UsageProblem(f"--to {to}: no such change (known: {', '.join(ids)})")
    if deployed is not None:
        if deployed != ids[: len(deployed)]:
            found.append(Difference("registry", f"lists {', '.join(deployed)}: not the first changes of this package "
                                                f"({', '.join(ids[: len(deployed) + 1])}…; a change left out with --without?)"))
            last = None
        else:
            last = deployed[-1]
        if to is not None and last is not None and to != last:
            found.append(Difference("--to", f"the {source.split(' (')[0]} says {last} is the last change deployed, not {to}"))
        target_id = to or last or ids[-1]
    else:
        target_id = to or ids[-1]
        first = selection[0]
        if not any(_exists(conn, kind, name) for kind, name, _ in export.change_objects(first) if kind == "schema"):
            raise TenantdbError("nothing to adopt: no tenantdb change is deployed in this database (no schema of "
                                f"{first.id}, and no sqitch or Supabase registry names one); install it with tenantdb migrate")
    selected = selection[: ids.index(target_id) + 1]
    report.changes = selected
    others = selection[len(selected):] + [c for c in everything if c.id not in ids]
    _options(conn, renderer, selected, found)
    if found and any(d.what == "target" or d.what.startswith(f"schema {renderer.target.api}") for d in found):
        found.append(Difference("other checks", "skipped: pass the --target and --api-schema the database was deployed with"))
        return report
    _objects(conn, selected, others, found)
    _repeatables(engine, conn, selected, found)
    if not found:
        _reference(engine, conn, selected, found, {} if cache is None else cache)
    if found and deployed is None and to is None:
        guess = _guess_to(conn, selection)
        if guess:
            found.append(Difference("hint", f"it looks deployed up to {guess} (an older export): try --to {guess}"))
    return report


def _managed(conn: psycopg.Connection) -> int:
    if conn.execute("select to_regclass('tenantdb.changes') is null").fetchone()[0]:
        return 0
    return conn.execute("select count(*) from tenantdb.changes").fetchone()[0]


def _refusal(report: Report) -> TenantdbError:
    lines = "\n".join(f"  {d}" for d in report.differences)
    return TenantdbError(f"this database does not match the package ({len(report.differences)} difference(s)); "
                         f"nothing was recorded:\n{lines}")


def adopt(engine: Engine, to: str | None = None, dry_run: bool = False) -> Report:
    """Check the database against the package and, if it matches, record the
    changes as applied (see the module's docstring). Refuses with
    TenantdbError (exit 1) listing the differences, recording nothing."""
    # These checks only read; record_adopted runs them again under the migration lock.
    with connect(engine.dsn) as conn:
        managed = _managed(conn)
        if managed:
            conn.rollback()
            engine.status()  # refuses (exit 2) a --target or --api-schema the database was not installed with
            return Report(managed=managed, source="tenantdb.changes")
        reference: dict[str, dict[tuple[str, str], str]] = {}
        report = inspect(engine, conn, to, reference)
        conn.rollback()
    if report.differences:
        raise _refusal(report)
    if dry_run:
        return report

    def recheck(conn: psycopg.Connection) -> None:
        if _managed(conn):
            raise TenantdbError("another run recorded changes meanwhile; nothing was recorded")
        again = inspect(engine, conn, to, reference)
        if again.differences:
            raise _refusal(again)
        if [c.id for c in again.changes] != [c.id for c in report.changes]:
            raise TenantdbError("the database changed while it was checked; nothing was recorded")

    engine.record_adopted(report.changes, recheck)
    return report
