"""Apply, revert and inspect tenantdb's changes on a live database.

Versioned migrations are applied by yoyo-migrations, one transaction per
change that also holds the change's repeatables and its bookkeeping rows.
Every transaction that writes takes tenantdb's migration lock first: a
transaction-scoped advisory lock, which PostgreSQL releases at commit, at
rollback and when the session dies, so a killed run leaves no lock behind,
not even on a pooled server connection. Nothing is set for the session
(only SET LOCAL) and nothing is prepared, for the same reason.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb
from yoyo import read_migrations
from yoyo.backends.core.postgresql import PostgresqlPsycopgBackend
from yoyo.connections import parse_uri

from . import appseed, dataloss, pooling
from .db import connect
from .errors import EditedChange, LockTimeout, StatementError, TenantdbError, UsageProblem
from .render import PACKAGE, Change, Renderer, Repeatable, drop_functions_sql, project_of
from .sqlsplit import split_statements

LOCK_KEY = 7_461_353_217  # pg_advisory_lock key of tenantdb's migration lock
Echo = Callable[[str], None]

BOOKKEEPING = """
create schema if not exists tenantdb;
comment on schema tenantdb is 'tenantdb bookkeeping: applied changes and their checksums (yoyo''s tables too). Not an API schema.';
revoke all on schema tenantdb from public;
create table if not exists tenantdb.changes (
  change_id text primary key,
  checksum text not null,
  target text not null,
  applied_at timestamptz not null default now(),
  duration_ms integer not null
);
comment on table tenantdb.changes is 'One row per applied versioned migration, with the sha256 of the SQL as rendered when applied.';
alter table tenantdb.changes add column if not exists api_schema text;
comment on column tenantdb.changes.api_schema is 'The --api-schema the change was rendered with (null: recorded before tenantdb kept it).';
create table if not exists tenantdb.repeatables (
  path text primary key,
  change_id text not null references tenantdb.changes (change_id) on delete cascade,
  checksum text not null,
  applied_at timestamptz not null default now()
);
create index if not exists repeatables_change_id on tenantdb.repeatables (change_id);
comment on table tenantdb.repeatables is 'The functions/ and policies/ files applied, with the sha256 of their rendered SQL; re-applied when it changes.';
create table if not exists tenantdb._yoyo_migration (
  migration_hash varchar(64) primary key,
  migration_id varchar(255),
  applied_at_utc timestamp
);
create table if not exists tenantdb._yoyo_log (
  id varchar(36) primary key,
  migration_hash varchar(64),
  migration_id varchar(255),
  operation varchar(10),
  username varchar(255),
  hostname varchar(255),
  comment varchar(255),
  created_at_utc timestamp
);
create table if not exists tenantdb._yoyo_version (
  version int not null primary key,
  installed_at_utc timestamp
);
insert into tenantdb._yoyo_version
select 2, (now() at time zone 'utc') where not exists (select from tenantdb._yoyo_version);
create table if not exists tenantdb.seeded_catalog (
  only_row boolean primary key default true constraint seeded_catalog_one_row check (only_row),
  source text not null,
  document jsonb not null,
  seeded_at timestamptz not null default now()
);
comment on table tenantdb.seeded_catalog is 'The plan catalog the last tenantdb seed loaded: verify checks that the rows the seeds own are still there.';
""" + appseed.OWNERSHIP

# yoyo's lock table: earlier releases took yoyo's lock beside the advisory
# one, and a run killed inside yoyo's setup left its row behind for good.
# tenantdb no longer uses it; a row found there is stale by definition.
_STALE_YOYO_LOCK = """
with gone as (
  delete from tenantdb.yoyo_lock returning pid, ctime
)
select pid, to_char(ctime, 'YYYY-MM-DD HH24:MI:SS') from gone
"""


def _write_yoyo_migration(folder: Path, change: Change) -> None:
    """The rendered change as a yoyo migration of one step.

    One step holding the whole file (sent with the simple query protocol)
    instead of yoyo's .sql reader, which splits statements with sqlparse and
    took as long as applying them. The migration id is the change id.
    """
    (folder / f"{change.id}.py").write_text(
        "from yoyo import step\n"
        "__transactional__ = True\n"
        f"steps = [step({change.sql!r}, {change.rollback!r})]\n"
    )


# The overloads of the named functions now in the catalog.
_OVERLOADS = """
select n.nspname || '.' || p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid), p.oid::regprocedure::text
  from pg_catalog.pg_proc p
  join pg_catalog.pg_namespace n on n.oid = p.pronamespace
 where n.nspname || '.' || p.proname = any (%s)
"""


# What --target supabase expects to find (Supabase provides it; plain
# PostgreSQL does not): (what, a query answering true when present).
SUPABASE_PREREQUISITES = [
    ("schema auth", "select to_regnamespace('auth') is not null"),
    ("table auth.users", "select to_regclass('auth.users') is not null"),
    ("function auth.uid()", "select to_regprocedure('auth.uid()') is not null"),
    ("role anon", "select exists (select from pg_catalog.pg_roles where rolname = 'anon')"),
    ("role authenticated", "select exists (select from pg_catalog.pg_roles where rolname = 'authenticated')"),
    ("role service_role", "select exists (select from pg_catalog.pg_roles where rolname = 'service_role')"),
]


class _YoyoBackend(PostgresqlPsycopgBackend):
    """yoyo's psycopg 3 backend on a plain conninfo, bookkeeping in schema tenantdb.

    Nothing of yoyo's lives in the session: its tables are named with their
    schema (yoyo sets search_path for the session instead), they are made
    by BOOKKEEPING under tenantdb's lock (not by yoyo's unlocked setup),
    and yoyo's lock table is not used (tenantdb's advisory lock is)."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        super().__init__(parse_uri("postgresql+psycopg:///tenantdb"), "_yoyo_migration")
        self.has_transactional_ddl = True
        self._internal_schema_updated = True  # BOOKKEEPING made yoyo's tables (version 2)
        self.pinned_pid: int | None = None  # the server session of the first locked transaction

    def connect(self, dburi):  # type: ignore[override]
        self.schema = "tenantdb"
        return connect(self._conninfo, autocommit=True)

    def init_connection(self, connection) -> None:  # type: ignore[override]
        """No session state: search_path is set per transaction (SET LOCAL)."""

    def __getattr__(self, attrname: str):
        if attrname.endswith("_quoted"):
            return "tenantdb." + self.quote_identifier(getattr(self, attrname.removesuffix("_quoted")))
        raise AttributeError(attrname)

    @contextmanager
    def lock(self, timeout: float = 10) -> Iterator[None]:  # type: ignore[override]
        yield  # tenantdb's advisory lock serializes runs (Engine._lock)

    def copy(self):  # type: ignore[override]
        return _YoyoBackend(self._conninfo)

    def get_log_data(self, migration=None, operation="apply"):  # type: ignore[override]
        data = super().get_log_data(migration, operation)
        data["hostname"] = "-"  # yoyo asks DNS for the FQDN: slow on a closed network
        return data


def installed_with(conn: psycopg.Connection) -> tuple[list[str], str | None]:
    """(the --target values, the API schema) tenantdb's bookkeeping recorded
    for this database: ([], None) where it has none. The API schema of a
    database recorded before tenantdb kept it is the schema holding
    check_username_available outside private. The one reader of both, for
    the engine, `docs` and `types`."""
    if conn.execute("select to_regclass('tenantdb.changes') is null").fetchone()[0]:
        return [], None
    targets = [r[0] for r in conn.execute("select distinct target from tenantdb.changes order by 1").fetchall()]
    api = conn.execute(
        "select to_jsonb(c) ->> 'api_schema' from tenantdb.changes c where to_jsonb(c) ->> 'api_schema' is not null "
        "union all "
        "select n.nspname::text from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace "
        "where p.proname = 'check_username_available' and n.nspname <> 'private' limit 1").fetchone()
    return targets, api[0] if api else None


def recorded_target(dsn: str) -> tuple[str | None, str | None]:
    """(target, API schema) the database was migrated with; None for what it did not record."""
    with connect(dsn, autocommit=True) as conn:
        targets, api = installed_with(conn)
    return (targets[0] if targets else None), api


# Where tenantdb's own schemas exist without its bookkeeping, the database was
# deployed some other way (an export through sqitch or the Supabase CLI).
_UNMANAGED = """
select string_agg(nspname, ', ' order by nspname) from pg_catalog.pg_namespace
 where nspname in ('identity', 'iam', 'tenancy', 'catalog', 'billing', 'usage')
   and to_regclass('tenantdb.changes') is null
"""


@dataclass
class Status:
    applied: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    edited: list[str] = field(default_factory=list)
    stale_repeatables: list[str] = field(default_factory=list)  # applied, rendered text changed
    unknown: list[str] = field(default_factory=list)  # applied, but not in this package
    applied_at: dict[str, str] = field(default_factory=dict)  # change id -> when (ISO 8601)
    duration_ms: dict[str, int] = field(default_factory=dict)  # change id -> how long it took
    unmanaged: str = ""  # tenantdb's schemas present without its history (deployed from an export)

    def as_dict(self) -> dict:
        """The status for --json: one entry per change, in order, and the repeatables to re-apply."""
        def entry(c: str, state: str) -> dict:
            return {"change": c, "project": project_of(c), "state": state,
                    "applied_at": self.applied_at.get(c), "duration_ms": self.duration_ms.get(c)}
        changes = [entry(c, "edited" if c in self.edited else "applied") for c in self.applied]
        changes += [entry(c, "pending") for c in self.pending]
        changes += [entry(c, "unknown") for c in self.unknown]
        return {"clean": self.clean, "changes": changes, "changed_repeatables": self.stale_repeatables,
                "unmanaged_schemas": self.unmanaged or None}

    @property
    def clean(self) -> bool:
        return not (self.pending or self.edited or self.stale_repeatables or self.unknown)


class Engine:
    def __init__(self, dsn: str, renderer: Renderer, echo: Echo = print, lock_timeout: float = 60.0) -> None:
        self.dsn = dsn
        self.renderer = renderer
        self.echo = echo
        self.lock_timeout = lock_timeout
        self.changes = renderer.changes()
        self.log: list[dict] = []  # what migrate and rollback did, for --json

    # -- bookkeeping -----------------------------------------------------
    def _recorded(self, conn: psycopg.Connection) -> tuple[dict[str, str], dict[str, str]]:
        if conn.execute("select to_regclass('tenantdb.changes') is not null").fetchone()[0] is False:
            return {}, {}
        targets, api = installed_with(conn)
        if targets and targets != [self.renderer.target.name]:
            raise UsageProblem(
                f"this database was migrated with --target {', '.join(targets)}, not {self.renderer.target.name}; "
                "pass the same --target (and --api-schema) it was installed with"
            )
        if api and api != self.renderer.target.api:
            raise UsageProblem(
                f"this database's API schema is {api}, not {self.renderer.target.api}: "
                f"pass --api-schema {api} (the schema a database was installed with cannot change)"
            )
        changes = dict(conn.execute("select change_id, checksum from tenantdb.changes").fetchall())
        reps = dict(conn.execute("select path, checksum from tenantdb.repeatables").fetchall())
        return changes, reps

    def database(self) -> dict[str, str]:
        """Which database this is: host (or socket directory), port, name and
        user, as the server connection reports them (never the password)."""
        with connect(self.dsn, autocommit=True) as conn:
            return {"host": conn.info.host, "port": str(conn.info.port), "dbname": conn.info.dbname, "user": conn.info.user}

    def adopt_hint(self) -> str:
        """The command that takes over a database deployed from an export."""
        return (f"tenantdb adopt --target {self.renderer.target.name} --api-schema {self.renderer.target.api} --dry-run "
                "(with the same --dsn; then without --dry-run)")

    def status(self) -> Status:
        with connect(self.dsn, autocommit=True) as conn:
            recorded, reps = self._recorded(conn)
            unmanaged = conn.execute(_UNMANAGED).fetchone()[0] or ""
            details = conn.execute(
                "select change_id, to_char(applied_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), duration_ms "
                "from tenantdb.changes").fetchall() if recorded else []
        st = Status(unmanaged=unmanaged)
        st.applied_at = {cid: at for cid, at, _ in details}
        st.duration_ms = {cid: ms for cid, _, ms in details}
        known = {c.id for c in self.changes}
        for change in self.changes:
            if change.id not in recorded:
                st.pending.append(change.id)
                continue
            st.applied.append(change.id)
            if recorded[change.id] != change.checksum:
                st.edited.append(change.id)
            for rep in change.repeatables:
                if reps.get(rep.path) != rep.checksum:
                    st.stale_repeatables.append(rep.path)
        st.unknown = sorted(set(recorded) - known)
        return st

    # -- locking ---------------------------------------------------------
    def _lock(self, conn: psycopg.Connection, source: str = "tenantdb", search_path: bool = True) -> int:
        """Take tenantdb's migration lock for the transaction conn is in, and
        return the server session's pid. search_path (yoyo's: the changes
        were always applied with it) and lock_timeout are set for this
        transaction only: --lock-timeout bounds the wait for this lock and
        for every lock the DDL after it takes (an ALTER queued behind a long
        read would otherwise wait, and block every later query on that
        table)."""
        try:
            conn.execute(f"set local lock_timeout = {int(self.lock_timeout * 1000)}")
            if search_path:
                conn.execute("set local search_path = tenantdb")
            return conn.execute("select pg_backend_pid(), pg_advisory_xact_lock(%s)", (LOCK_KEY,)).fetchone()[0]
        except psycopg.errors.LockNotAvailable as exc:
            raise LockTimeout(
                f"another tenantdb run holds the migration lock; gave up after {self.lock_timeout:g}s "
                "(raise --lock-timeout, or find it with: select pid from pg_locks where locktype = 'advisory' "
                f"and (classid::bigint << 32 | objid::bigint) = {LOCK_KEY})"
            ) from exc
        except psycopg.Error as exc:
            raise StatementError(source, "select pg_advisory_xact_lock(...)", exc) from exc

    def _lock_backend(self, backend: _YoyoBackend) -> None:
        """_lock on yoyo's connection, which must stay on one server session:
        a later transaction on another one means a transaction pooler."""
        pid = self._lock(backend.connection)
        if backend.pinned_pid is None:
            backend.pinned_pid = pid
        elif pid != backend.pinned_pid:
            raise pooling.moved(self.dsn, backend.pinned_pid, pid)

    def _writable(self, conn: psycopg.Connection, what: str) -> None:
        """Refuse, before writing anything, a database that cannot be written."""
        recovery, read_only = conn.execute(
            "select pg_catalog.pg_is_in_recovery(), pg_catalog.current_setting('transaction_read_only')").fetchone()
        if recovery or read_only == "on":
            why = "a hot standby (pg_is_in_recovery)" if recovery else "default_transaction_read_only is on"
            raise TenantdbError(f"SQLSTATE 25006: cannot {what}: the database is read-only ({why}); "
                                "run it against the primary. Nothing was changed.")

    # -- apply -----------------------------------------------------------
    def change_named(self, name: str | None) -> str | None:
        """The change id a --to names: its full id (0017_comments,
        myapp:0001_documents), an app change's id in its project
        (0001_documents), or a number (0017, 17; myapp:1). Refuses an
        unknown or ambiguous name (exit 2)."""
        if name is None:
            return None
        ids = [c.id for c in self.changes]
        if name in ids:
            return name
        project, _, local = name.rpartition(":")
        found = [c.id for c in self.changes if (not project or c.project == project)
                 and (c.local_id == local or (local.isdigit() and int(c.number) == int(local)))]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise UsageProblem(f"--to {name}: names {' and '.join(found)}; give the full id")
        raise UsageProblem(f"--to {name}: no such change (known: {', '.join(ids)}; a number such as "
                           f"{self.changes[-1].number if self.changes else '0001'} names one too)")

    def _select(self, to: str | None) -> list[Change]:
        if to is None:
            return list(self.changes)
        ids = [c.id for c in self.changes]
        if to not in ids:
            raise UsageProblem(f"--to {to}: no such change (known: {', '.join(ids)})")
        return self.changes[: ids.index(to) + 1]

    def other_apps(self, recorded: list[str]) -> str:
        """"app shop's changes (shop:0001_documents)" for each app project
        other than this run's one whose changes are among recorded; "" if none."""
        mine = self.renderer.app.name if self.renderer.app else None
        found: dict[str, list[str]] = {}
        for cid in sorted(recorded):
            if project_of(cid) not in (PACKAGE, mine):
                found.setdefault(project_of(cid), []).append(cid)
        return "; ".join(f"app {name}'s changes ({', '.join(ids)})" for name, ids in found.items())

    def _preflight(self, conn: psycopg.Connection, recorded: dict[str, str], selected: list[Change]) -> None:
        """What migrate checks before its first change (a dry run too): no
        applied change edited, no other app's history in the database (one
        app project per database: its name never changes), and the
        target's prerequisites in place."""
        unmanaged = conn.execute(_UNMANAGED).fetchone()[0]
        if unmanaged:
            raise UsageProblem(
                f"this database holds tenantdb's schemas ({unmanaged}) but no tenantdb history: it was deployed from an "
                f"export (sqitch, the Supabase CLI) or by hand, and migrate would fail on the first of them. Take it over "
                f"with: {self.adopt_hint()}. Nothing was applied.")
        app = self.renderer.app
        others = self.other_apps(list(recorded)) if app else ""
        if app and others:
            raise UsageProblem(
                f"this database holds {others}, not {app.name}'s: it takes one app project (rollback and verify need "
                f"every applied change in one project). Run tenantdb in that app's project, or use another database; "
                f"if {app.name} is that app renamed, put its name back in {app.config_path} (an app's name never "
                "changes once a database holds its changes). Nothing was applied.")
        edited = [c.id for c in self.changes if c.id in recorded and recorded[c.id] != c.checksum]
        if edited:
            raise EditedChange(
                f"applied change(s) edited since they ran: {', '.join(edited)}; "
                "restore the files, or write a new migration (tenantdb status shows them)"
            )
        if self.renderer.target.name == "supabase" and any(c.id not in recorded for c in selected):
            missing = [what for what, query in SUPABASE_PREREQUISITES if not conn.execute(query).fetchone()[0]]
            if missing:
                raise UsageProblem(
                    f"--target supabase needs Supabase's auth and roles, and this database lacks: {', '.join(missing)}; "
                    "on plain PostgreSQL use --target postgres (tenantdb then creates a compatible auth schema). "
                    "Nothing was applied."
                )

    def dry_run(self, to: str | None = None) -> str:
        """The SQL that migrate would run now, changing nothing; refuses as migrate would."""
        selected = self._select(to)
        with connect(self.dsn, autocommit=True) as conn:
            recorded, reps = self._recorded(conn)
            self._preflight(conn, recorded, selected)
        parts: list[str] = []
        for change in selected:
            if change.id not in recorded:
                parts.append(f"-- change {change.id} ({change.path})\n{change.sql}")
                parts.extend(f"-- repeatable {r.path}\n{r.sql}" for r in change.repeatables)
            else:
                parts.extend(
                    f"-- repeatable {r.path} (changed)\n{r.sql}"
                    for r in change.repeatables
                    if reps.get(r.path) != r.checksum
                )
        return "\n".join(parts)

    def migrate(self, to: str | None = None, allow_data_loss: bool = False) -> int:
        """Apply what is pending; return how many changes and repeatables ran.

        A change marked destructive that would drop tables or columns
        holding data is refused (DataLoss) unless allow_data_loss."""
        selected = self._select(to)
        with connect(self.dsn, autocommit=True) as conn:
            recorded, reps = self._recorded(conn)
            self._preflight(conn, recorded, selected)
            pending = [c for c in selected if c.id not in recorded]
            stale = [(c, r) for c in selected if c.id in recorded for r in c.repeatables if reps.get(r.path) != r.checksum]
            if not pending and not stale:
                self.mirror_client_grants()  # writes only if the grants differ
                return 0
            self._writable(conn, "migrate")
        pooling.refuse_transaction_pooler(self.dsn)
        with tempfile.TemporaryDirectory(prefix="tenantdb-") as tmp:
            for change in pending:
                _write_yoyo_migration(Path(tmp), change)
            migrations = {m.id: m for m in read_migrations(tmp)}
            backend = _YoyoBackend(self.dsn)
            try:
                with backend.transaction():
                    self._lock_backend(backend)
                    self._execute(backend, "tenantdb bookkeeping", BOOKKEEPING)
                    self._clear_stale_yoyo_lock(backend)
                count = 0
                # Changed repeatables of applied changes first, all in one
                # transaction (older than anything pending), then each
                # pending change in its own.
                if stale:
                    with backend.transaction():
                        self._lock_backend(backend)
                        with backend.connection.cursor() as cur:
                            now = dict(cur.execute("select path, checksum from tenantdb.repeatables").fetchall())
                        for change, rep in stale:
                            if now.get(rep.path) != rep.checksum:  # another run may have re-applied it meanwhile
                                self._apply_repeatable(backend, change, rep)
                                count += 1
                for change in pending:
                    count += self._apply_change(backend, migrations[change.id], change, selected, allow_data_loss)
            finally:
                backend.connection.close()
        self.mirror_client_grants()
        return count

    def _clear_stale_yoyo_lock(self, backend: _YoyoBackend) -> None:
        """Rows in yoyo's lock table (made by earlier releases) are stale:
        tenantdb holds its own lock here, and no longer takes yoyo's."""
        with backend.connection.cursor() as cur:
            if cur.execute("select to_regclass('tenantdb.yoyo_lock') is null").fetchone()[0]:
                return
            for pid, since in cur.execute(_STALE_YOYO_LOCK).fetchall():
                self.echo(f"cleared a stale row of tenantdb.yoyo_lock (process {pid}, since {since} UTC): "
                          "left by an interrupted run of an earlier tenantdb")

    def mirror_client_grants(self) -> None:
        """Give organization_scoped exactly authenticated's privileges (the
        database does it: private.mirror_client_grants), under the migration
        lock, where the schema has that function and the privileges differ
        (so a read-only database with nothing to do is not written to)."""
        differ = "select exists (select from private.client_grant_differences())"
        with connect(self.dsn) as conn:
            if not conn.execute("select to_regprocedure('private.mirror_client_grants()') is not null").fetchone()[0] \
                    or not conn.execute(differ).fetchone()[0]:
                return
            conn.rollback()
            self._lock(conn, "private.mirror_client_grants()", search_path=False)
            if conn.execute(differ).fetchone()[0]:
                conn.execute("select private.mirror_client_grants()")
            conn.commit()

    def _apply_change(self, backend: _YoyoBackend, migration, change: Change, selected: list[Change],
                      allow_data_loss: bool) -> int:
        """Apply one pending change in its own transaction; 0 when another run
        applied it meanwhile, else 1."""
        try:
            return self._apply_change_once(backend, migration, change, selected, allow_data_loss)
        except StatementError as exc:
            # A run-time error (a constraint, a RAISE) carries no position in
            # the file: find the statement by running the file's statements
            # one by one in a transaction that is rolled back.
            if exc.located or exc.source != change.path or not isinstance(exc.__cause__, psycopg.Error):
                raise
            found = self._locate(change.sql)
            if found is None:
                raise
            line, statement, error = found
            raise StatementError(change.path, statement, error, line=line) from exc.__cause__

    def _locate(self, sql: str) -> tuple[int, str, psycopg.Error] | None:
        with connect(self.dsn) as conn:
            try:
                conn.execute("set local search_path = tenantdb")  # as the change ran
                for offset, statement in split_statements(sql):
                    try:
                        conn.execute(statement.encode())
                    except psycopg.Error as exc:
                        return sql.count("\n", 0, offset) + 1, statement, exc
            finally:
                conn.rollback()
        return None

    def _apply_change_once(self, backend: _YoyoBackend, migration, change: Change, selected: list[Change],
                           allow_data_loss: bool) -> int:
        started = time.perf_counter()
        with backend.transaction():
            self._lock_backend(backend)
            # Under the lock, the database as this run found it, or as another
            # run left it: skip what it applied, stop if it rolled back.
            with backend.connection.cursor() as cur:
                done = {row[0] for row in cur.execute("select change_id from tenantdb.changes").fetchall()}
            if change.id in done:
                self.echo(f"{change.id} was applied by another run meanwhile")
                return 0
            earlier = [c.id for c in selected[: selected.index(change)] if c.id not in done]
            if earlier:
                raise TenantdbError(f"{', '.join(earlier)} is no longer applied (another run rolled it back while this "
                                    f"one ran): stopped before {change.id}; run tenantdb migrate again")
            self.echo(f"applying {change.id} ...")
            migration.load()

            def run_steps() -> None:
                for step in migration.steps:
                    statement = getattr(getattr(step, "step", step), "_apply", "")
                    try:
                        step.apply(backend)
                    except psycopg.errors.LockNotAvailable as exc:
                        raise self._lock_waited(change.path, str(statement)) from exc
                    except psycopg.Error as exc:
                        raise StatementError(change.path, str(statement), exc) from exc

            if change.destructive:
                for item in dataloss.guarded(backend.connection, run_steps, f"{change.id} (marked destructive)",
                                             allow_data_loss):
                    self.echo(f"{change.id} dropped {item}")
            else:
                run_steps()
            backend.mark_one(migration, log=False)
            duration = int((time.perf_counter() - started) * 1000)
            self._execute(
                backend,
                change.path,
                "insert into tenantdb.changes (change_id, checksum, target, duration_ms, api_schema) values (%s, %s, %s, %s, %s)",
                (change.id, change.checksum, self.renderer.target.name, duration, self.renderer.target.api),
            )
            for rep in change.repeatables:
                self._apply_repeatable(backend, change, rep, quiet=True)
            backend.log_migration(migration, "apply")
        ms = int((time.perf_counter() - started) * 1000)
        self.log.append({"change": change.id, "action": "applied", "duration_ms": ms})
        self.echo(f"applied {change.id} ({ms} ms)")
        return 1

    def _apply_repeatable(self, backend: _YoyoBackend, change: Change, rep: Repeatable, quiet: bool = False) -> None:
        started = time.perf_counter()
        # A function whose signature changed would leave its old overload
        # behind (create or replace makes a second one), and one whose
        # parameters were renamed cannot be replaced at all: drop the
        # overloads of this file's functions that the file no longer defines
        # (argument names and types), first.
        wanted = self._signatures(backend, rep)
        for name, types, signature in self._overloads(backend, rep.functions):
            if (name, types) not in wanted:
                self._execute(backend, rep.path, f"drop function {signature}")
                self.echo(f"dropped {signature} ({rep.path} defines it with other parameters, or not at all)")
        self._execute(backend, rep.path, rep.sql)
        self._execute(
            backend,
            rep.path,
            "insert into tenantdb.repeatables (path, change_id, checksum) values (%s, %s, %s) "
            "on conflict (path) do update set checksum = excluded.checksum, applied_at = now()",
            (rep.path, change.id, rep.checksum),
        )
        if not quiet:
            ms = int((time.perf_counter() - started) * 1000)
            self.log.append({"repeatable": rep.path, "action": "reapplied", "duration_ms": ms})
            self.echo(f"reapplied {rep.path} ({ms} ms)")

    def _lock_waited(self, source: str, statement: str) -> LockTimeout:
        """The message of a DDL statement that gave up on a lock: the statement
        and the sessions holding locks on the tables it names."""
        holders: list[str] = []
        try:
            with connect(self.dsn, autocommit=True) as conn:
                holders = [f"pid {pid} ({state}, {rel}: {query})" for pid, state, rel, query in conn.execute(
                    "select distinct a.pid, a.state, l.relation::regclass::text, left(regexp_replace(a.query, '\\s+', ' ', 'g'), 80) "
                    "from pg_catalog.pg_locks l join pg_catalog.pg_stat_activity a on a.pid = l.pid "
                    "where l.locktype = 'relation' and l.granted and a.pid <> pg_backend_pid() "
                    "and a.datname = current_database() and l.relation::regclass::text not like 'pg\\_%%' "
                    "and position(coalesce(nullif(split_part(l.relation::regclass::text, '.', 2), ''), l.relation::regclass::text) in %s) > 0 order by 1 limit 5",
                    (statement,)).fetchall()]
        except TenantdbError:
            pass
        who = "; held by " + ", ".join(holders) if holders else ""
        return LockTimeout(
            f"{source}: gave up after {self.lock_timeout:g}s (--lock-timeout) waiting for a lock on a table this change "
            f"alters{who}. Nothing was applied by this change; retry when the table is free, or raise --lock-timeout."
        )

    @staticmethod
    def _overloads(backend: _YoyoBackend, names: list[str]) -> list[tuple[str, str, str]]:
        """(name, identity arguments, regprocedure) of every overload of the names."""
        if not names:
            return []
        with backend.connection.cursor() as cur:
            return [tuple(r) for r in cur.execute(_OVERLOADS, (list(names),)).fetchall()]

    def _signatures(self, backend: _YoyoBackend, rep: Repeatable) -> set[tuple[str, str]]:
        """(name, identity arguments: names and types) of each function the
        file defines, resolved by Postgres itself: each argument list is
        tried on a scratch function."""
        found = set()
        for name, args in rep.function_headers:
            self._execute(backend, rep.path, "savepoint tenantdb_signature")
            self._execute(backend, rep.path,
                          f"create function pg_temp.tenantdb_signature({args}) returns void language sql as ''")
            with backend.connection.cursor() as cur:
                types = cur.execute(
                    "select pg_catalog.pg_get_function_identity_arguments(p.oid) from pg_catalog.pg_proc p "
                    "where p.proname = 'tenantdb_signature' and p.pronamespace = pg_catalog.pg_my_temp_schema()"
                ).fetchone()[0]
            self._execute(backend, rep.path, "rollback to savepoint tenantdb_signature")
            found.add((name, types))
        return found

    def _execute(self, backend: _YoyoBackend, source: str, sql: str, params: tuple | None = None) -> None:
        try:
            with backend.connection.cursor() as cur:
                cur.execute(sql, params) if params is not None else cur.execute(sql.encode())
        except psycopg.errors.LockNotAvailable as exc:
            raise self._lock_waited(source, sql) from exc
        except psycopg.Error as exc:
            raise StatementError(source, sql, exc) from exc

    # -- rollback --------------------------------------------------------
    def rollback(self, to: str | None = None, steps: int | None = None, all_: bool = False,
                 allow_data_loss: bool = False, cascade: bool = False) -> int:
        """Revert applied changes, newest first; return how many. All in one
        transaction, planned under the lock. Dropping tables that hold rows
        (or columns that hold values) is refused (DataLoss, nothing
        reverted) unless allow_data_loss."""
        with connect(self.dsn, autocommit=True) as conn:
            self._recorded(conn)  # refuses another --target / --api-schema
            self._writable(conn, "roll back")
        pooling.refuse_transaction_pooler(self.dsn)
        with tempfile.TemporaryDirectory(prefix="tenantdb-") as tmp:
            backend = _YoyoBackend(self.dsn)
            try:
                # All the changes of one rollback in one transaction: a change
                # that refuses (0008 with audit records, someone's view on a
                # function) leaves every later one applied, not half reverted.
                with backend.transaction():
                    self._lock_backend(backend)
                    recorded, _ = self._recorded(backend.connection)
                    victims = self._victims(recorded, to, steps, all_, self._applied_order(backend.connection))
                    if not cascade:
                        self._refuse_mixed(victims, to, steps, all_)
                    for change in victims:
                        _write_yoyo_migration(Path(tmp), change)
                    migrations = {m.id: m for m in read_migrations(tmp)}
                    what = f"rollback of {', '.join(c.id for c in reversed(victims))}" if victims else "rollback"
                    lost = dataloss.guarded(backend.connection, lambda: self._revert(backend, migrations, victims),
                                            what, allow_data_loss)
                    for item in lost:
                        self.echo(f"dropped {item}")
                    for change in reversed(victims):
                        backend.log_migration(migrations[change.id], "rollback")
                        self.log.append({"change": change.id, "action": "reverted"})
                for change in reversed(victims):
                    self.echo(f"reverted {change.id}")
            finally:
                backend.connection.close()
        self.mirror_client_grants()
        return len(victims)

    def _applied_order(self, conn: psycopg.Connection) -> dict[str, tuple]:
        """change id -> its place in the order the changes were applied
        (applied_at, then the plan's order: adopt records many at once)."""
        index = {c.id: i for i, c in enumerate(self.changes)}
        rows = conn.execute("select change_id, applied_at from tenantdb.changes").fetchall()
        return {cid: (at, index.get(cid, -1)) for cid, at in rows}

    def _victims(self, recorded: dict[str, str], to: str | None, steps: int | None, all_: bool,
                 order: dict[str, tuple] | None = None) -> list[Change]:
        """The applied changes a rollback reverts, oldest first: the newest
        ones in the order they were applied (an app's changes and the
        package's interleave as they were applied)."""
        applied = [c for c in self.changes if c.id in recorded]
        if order:
            applied.sort(key=lambda c: order[c.id])
        hidden = sorted(set(recorded) - {c.id for c in self.changes})
        if hidden:
            apps = sorted({project_of(c) for c in hidden} - {PACKAGE})
            where = (f" (app change(s) of {', '.join(apps)}: run tenantdb in that app's project, where its "
                     "tenantdb.toml is)") if apps else ""
            raise TenantdbError(
                f"cannot roll back: applied change(s) {', '.join(hidden)} are not in the selection{where} "
                "(left out with --without, or from another release); roll back with the same changes "
                "the database was migrated with")
        if to is not None:
            ids = [c.id for c in applied]
            if to not in ids:
                raise UsageProblem(f"--to {to}: not an applied change (applied: {', '.join(ids) or 'none'})")
            return applied[ids.index(to) + 1 :]
        if steps is not None:
            return applied[-steps:] if steps > 0 else []
        return applied if all_ else applied[-1:]

    def needs(self, change: Change, order: list[Change]) -> list[str]:
        """The package changes an app change needs: up to the newest one it
        requires (the package's changes build on each other), or, where
        it names none, every package change applied before it."""
        package = [c.id for c in self.changes if not c.is_app]
        if change.requires:
            newest = max(package.index(r) for r in change.requires)
            return package[: newest + 1]
        return [c.id for c in order[: order.index(change)] if not c.is_app] if change in order else package

    def _refuse_mixed(self, victims: list[Change], to: str | None, steps: int | None, all_: bool) -> None:
        """A rollback that would revert package changes and app changes
        together says so and stops, unless --cascade: the app's changes
        named, with the package changes each one needs."""
        package = [c for c in victims if not c.is_app]
        app = [c for c in victims if c.is_app]
        if not package or not app:
            return
        asked = f"--to {to}" if to else f"--steps {steps}" if steps else "--all" if all_ else "the newest change"
        reverted = {c.id for c in package}
        lines = []
        for change in reversed(app):
            needed = [n for n in self.needs(change, victims) if n in reverted]
            why = (f"needs {', '.join(needed)} (requires {', '.join(change.requires)})" if change.requires and needed
                   else f"needs {', '.join(needed)} (applied after it)" if needed
                   else "needs none of them, but is in the same rollback")
            lines.append(f"{change.id} {why}")
        raise UsageProblem(
            f"rollback ({asked}) would revert package change(s) {', '.join(c.id for c in reversed(package))} and, "
            f"with them, app change(s): {'; '.join(lines)}. Nothing was reverted. Roll back the app's changes "
            f"first (tenantdb rollback --to <an app change>), or pass --cascade to revert all of these.")

    def _revert(self, backend: _YoyoBackend, migrations: dict, victims: list[Change]) -> None:
        """Run the rollback of each victim, newest first, in the open transaction."""
        for change in reversed(victims):  # no progress lines here: a guarded rollback runs this twice
            migration = migrations[change.id]
            # The rollback file first (it drops the change's own views and
            # tables), then the functions of the change's repeatables with
            # their triggers and policies: a view or default of someone
            # else's that still uses one refuses the rollback (2BP01)
            # instead of disappearing with it.
            migration.load()
            rollback_path = change.path.replace(".sql", ".rollback.sql")
            for step in reversed(migration.steps):
                statement = getattr(getattr(step, "step", step), "_rollback", "")
                try:
                    step.rollback(backend)
                except psycopg.errors.LockNotAvailable as exc:
                    raise self._lock_waited(rollback_path, str(statement)) from exc
                except psycopg.Error as exc:
                    raise StatementError(rollback_path, str(statement), exc, note="nothing was reverted") from exc
            if change.functions:
                self._execute(backend, change.path, drop_functions_sql(change.functions))
            backend.unmark_one(migration, log=False)
            self._execute(backend, change.path, "delete from tenantdb.changes where change_id = %s", (change.id,))

    # -- seeds -----------------------------------------------------------
    def seed(self, catalog: Path | None = None) -> None:
        """Load the plan catalog (default seeds/catalog.json, with an app
        project's merged in) through private.load_catalog, then the SQL
        seeds (the package's, the app's permissions, the app's SQL seeds),
        in one transaction, and record the catalog loaded (verify reads it)."""
        st = self.status()
        if st.pending:
            raise TenantdbError(f"cannot seed: changes pending ({', '.join(st.pending)}); run tenantdb migrate first")
        others = self.other_apps(st.unknown)
        if others:  # its part of the catalog would be left out: its features removed from every plan
            raise TenantdbError(
                f"cannot seed: this database holds {others}, and a seed without that app's seeds would remove its "
                "features from the plans (every insert its gates count would be refused): run tenantdb seed in that "
                "app's project (or with --project DIR). Nothing was seeded.")
        document, source = self.catalog_document(catalog)
        with connect(self.dsn) as conn:
            self._writable(conn, "seed")
            self._lock(conn, "seed", search_path=False)
            try:
                conn.execute(BOOKKEEPING.encode())
            except psycopg.Error as exc:
                raise StatementError("tenantdb bookkeeping", BOOKKEEPING, exc) from exc
            self.load_seeds(conn, document, source)
            try:
                conn.execute("insert into tenantdb.seeded_catalog (source, document) values (%s, %s) "
                             "on conflict (only_row) do update set source = excluded.source, document = excluded.document, "
                             "seeded_at = now()", (source, Jsonb(document)))
            except psycopg.Error as exc:
                raise StatementError("tenantdb bookkeeping", "insert into tenantdb.seeded_catalog ...", exc) from exc
            conn.commit()
        self.mirror_client_grants()  # a seed may make a view (organization_usage_summary)

    def catalog_document(self, catalog: Path | None = None) -> tuple[dict, str]:
        """(the catalog seed loads, where it came from): the package's
        seeds/catalog.json (or catalog), with an app project's merged in."""
        return appseed.catalog_document(self.renderer.root, self.renderer.app, catalog)

    def load_seeds(self, conn: psycopg.Connection, document: dict, source: str, quiet: bool = False) -> None:
        """The catalog document through private.load_catalog, then the
        package's SQL seeds, an app project's permissions and its SQL
        seeds, in conn's open transaction (the caller commits or rolls back)."""
        started = time.perf_counter()
        try:
            written = conn.execute("select private.load_catalog(%s)", (Jsonb(document),)).fetchone()[0]
        except psycopg.Error as exc:
            raise StatementError(source, "select private.load_catalog(...)", exc) from exc
        ms = int((time.perf_counter() - started) * 1000)
        if not quiet:
            self.log.append({"seed": source, "written": written, "duration_ms": ms})
            app = self.renderer.app
            shown = Path(source.split(" + ")[0]).name + (f" + {app.name}:seeds/catalog.json" if app else "")
            self.echo(f"seeded {shown}: {json.dumps(written, sort_keys=True)} ({ms} ms)")
        app = self.renderer.app
        for relpath, sql in self.renderer.seeds():
            self._run_seed(conn, relpath, sql, quiet)
        if app is None:
            return
        started = time.perf_counter()
        written, removed = appseed.load_permissions(conn, app)
        if not quiet:
            ms = int((time.perf_counter() - started) * 1000)
            self.log.append({"seed": str(appseed.permissions_path(app)), "written": written,
                             "role_mappings_removed": removed, "duration_ms": ms})
            self.echo(f"seeded {app.name}:seeds/permissions.json: {written} permission(s) written"
                      + (f", {removed} role mapping(s) removed" if removed else "") + f" ({ms} ms)")
        for relpath, sql in self.renderer.app_seeds():
            self._run_seed(conn, relpath, sql, quiet)

    def _run_seed(self, conn: psycopg.Connection, relpath: str, sql: str, quiet: bool) -> None:
        started = time.perf_counter()
        try:
            conn.execute(sql.encode())
        except psycopg.Error as exc:
            raise StatementError(relpath, sql, exc) from exc
        ms = int((time.perf_counter() - started) * 1000)
        if not quiet:
            self.log.append({"seed": relpath, "duration_ms": ms})
            self.echo(f"seeded {relpath} ({ms} ms)")

    # -- adopt: a database deployed from an export (tenantdb/adopt.py) -----
    def stray_overloads(self, conn: psycopg.Connection, repeatables: list[Repeatable]) -> list[tuple[str, str]]:
        """(regprocedure, file) of each overload of the files' functions that
        none of the files defines — what migrate would drop before applying
        them. conn must be in a transaction (signatures are resolved with a
        scratch function under a savepoint)."""
        from types import SimpleNamespace  # stands in for the yoyo backend: only .connection is used

        backend = SimpleNamespace(connection=conn)
        wanted: set[tuple[str, str]] = set()
        owner: dict[str, str] = {}
        for rep in repeatables:
            wanted |= self._signatures(backend, rep)  # type: ignore[arg-type]
            owner.update((name, rep.path) for name in rep.functions)
        return [(signature, owner[name]) for name, types, signature in self._overloads(backend, sorted(owner))  # type: ignore[arg-type]
                if (name, types) not in wanted]

    def record_adopted(self, changes: list[Change], check: Callable[[psycopg.Connection], None]) -> None:
        """Record changes as applied without running them: yoyo's rows (logged
        as 'mark', as `yoyo mark` does), tenantdb.changes and
        tenantdb.repeatables with the checksums migrate records, and the
        target — in one transaction that runs check(connection) first (it
        raises to record nothing), under the migration lock. Creates the
        bookkeeping tables first, as migrate does."""
        pooling.refuse_transaction_pooler(self.dsn)
        with tempfile.TemporaryDirectory(prefix="tenantdb-") as tmp:
            for change in changes:
                _write_yoyo_migration(Path(tmp), change)
            migrations = {m.id: m for m in read_migrations(tmp)}
            backend = _YoyoBackend(self.dsn)
            try:
                with backend.transaction():
                    self._lock_backend(backend)
                    self._execute(backend, "tenantdb bookkeeping", BOOKKEEPING)
                    check(backend.connection)
                    for change in changes:
                        backend.mark_one(migrations[change.id], log=True)
                        self._execute(backend, change.path,
                                      "insert into tenantdb.changes (change_id, checksum, target, duration_ms, api_schema) "
                                      "values (%s, %s, %s, 0, %s)",
                                      (change.id, change.checksum, self.renderer.target.name, self.renderer.target.api))
                        for rep in change.repeatables:
                            self._execute(backend, rep.path,
                                          "insert into tenantdb.repeatables (path, change_id, checksum) values (%s, %s, %s)",
                                          (rep.path, change.id, rep.checksum))
                        self.log.append({"change": change.id, "action": "adopted"})
                        self.echo(f"adopted {change.id}")
            finally:
                backend.connection.close()
