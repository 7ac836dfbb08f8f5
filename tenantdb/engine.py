"""Apply, revert and inspect tenantdb's changes on a live database.

Versioned migrations are applied by yoyo-migrations, one transaction per
change that also holds the change's repeatables and its bookkeeping rows.
Every apply and rollback runs under a Postgres advisory lock.
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

from .db import connect
from .errors import EditedChange, LockTimeout, StatementError, TenantdbError, UsageProblem
from .render import Change, Renderer, Repeatable, drop_functions_sql
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
_SUPABASE_PREREQUISITES = [
    ("schema auth", "select to_regnamespace('auth') is not null"),
    ("table auth.users", "select to_regclass('auth.users') is not null"),
    ("function auth.uid()", "select to_regprocedure('auth.uid()') is not null"),
    ("role anon", "select exists (select from pg_catalog.pg_roles where rolname = 'anon')"),
    ("role authenticated", "select exists (select from pg_catalog.pg_roles where rolname = 'authenticated')"),
    ("role service_role", "select exists (select from pg_catalog.pg_roles where rolname = 'service_role')"),
]


class _YoyoBackend(PostgresqlPsycopgBackend):
    """yoyo's psycopg 3 backend on a plain conninfo, bookkeeping in schema tenantdb."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        super().__init__(parse_uri("postgresql+psycopg:///tenantdb"), "_yoyo_migration")
        self.init_database()

    def connect(self, dburi):  # type: ignore[override]
        self.schema = "tenantdb"
        return psycopg.connect(self._conninfo, autocommit=True)

    def copy(self):  # type: ignore[override]
        return _YoyoBackend(self._conninfo)

    def get_log_data(self, migration=None, operation="apply"):  # type: ignore[override]
        data = super().get_log_data(migration, operation)
        data["hostname"] = "-"  # yoyo asks DNS for the FQDN: slow on a closed network
        return data


@dataclass
class Status:
    applied: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    edited: list[str] = field(default_factory=list)
    stale_repeatables: list[str] = field(default_factory=list)  # applied, rendered text changed
    unknown: list[str] = field(default_factory=list)  # applied, but not in this package
    applied_at: dict[str, str] = field(default_factory=dict)  # change id -> when (ISO 8601)
    duration_ms: dict[str, int] = field(default_factory=dict)  # change id -> how long it took

    def as_dict(self) -> dict:
        """The status for --json: one entry per change, in order, and the repeatables to re-apply."""
        changes = [{"change": c, "state": "edited" if c in self.edited else "applied",
                    "applied_at": self.applied_at.get(c), "duration_ms": self.duration_ms.get(c)} for c in self.applied]
        changes += [{"change": c, "state": "pending", "applied_at": None, "duration_ms": None} for c in self.pending]
        changes += [{"change": c, "state": "unknown", "applied_at": self.applied_at.get(c), "duration_ms": self.duration_ms.get(c)}
                    for c in self.unknown]
        return {"clean": self.clean, "changes": changes, "changed_repeatables": self.stale_repeatables}

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
        targets = [r[0] for r in conn.execute("select distinct target from tenantdb.changes").fetchall()]
        if targets and targets != [self.renderer.target.name]:
            raise UsageProblem(
                f"this database was migrated with --target {', '.join(targets)}, not {self.renderer.target.name}; "
                "pass the same --target (and --api-schema) it was installed with"
            )
        api = conn.execute(
            "select to_jsonb(c) ->> 'api_schema' from tenantdb.changes c where to_jsonb(c) ->> 'api_schema' is not null "
            "union all "
            "select n.nspname::text from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace "
            "where p.proname = 'check_username_available' and n.nspname <> 'private' limit 1").fetchone()
        if api and api[0] != self.renderer.target.api:
            raise UsageProblem(
                f"this database's API schema is {api[0]}, not {self.renderer.target.api}: "
                f"pass --api-schema {api[0]} (the schema a database was installed with cannot change)"
            )
        changes = dict(conn.execute("select change_id, checksum from tenantdb.changes").fetchall())
        reps = dict(conn.execute("select path, checksum from tenantdb.repeatables").fetchall())
        return changes, reps

    def status(self) -> Status:
        with connect(self.dsn, autocommit=True) as conn:
            recorded, reps = self._recorded(conn)
            details = conn.execute(
                "select change_id, to_char(applied_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), duration_ms "
                "from tenantdb.changes").fetchall() if recorded else []
        st = Status()
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
    @contextmanager
    def _locked(self) -> Iterator[None]:
        conn = connect(self.dsn, autocommit=True)
        try:
            conn.execute(f"set lock_timeout = {int(self.lock_timeout * 1000)}")
            try:
                conn.execute("select pg_advisory_lock(%s)", (LOCK_KEY,))
            except psycopg.errors.LockNotAvailable as exc:
                raise LockTimeout(
                    f"another tenantdb run holds the migration lock; gave up after {self.lock_timeout:g}s "
                    "(raise --lock-timeout, or find it with: select pid from pg_locks where locktype = 'advisory')"
                ) from exc
            conn.execute("set lock_timeout = 0")
            yield
        finally:
            conn.close()  # closing the session releases the advisory lock

    # -- apply -----------------------------------------------------------
    def _select(self, to: str | None) -> list[Change]:
        if to is None:
            return list(self.changes)
        ids = [c.id for c in self.changes]
        if to not in ids:
            raise UsageProblem(f"--to {to}: no such change (known: {', '.join(ids)})")
        return self.changes[: ids.index(to) + 1]

    def _preflight(self, conn: psycopg.Connection, recorded: dict[str, str], selected: list[Change]) -> None:
        """What migrate checks before its first change (a dry run too): no
        applied change edited, and the target's prerequisites in place."""
        edited = [c.id for c in self.changes if c.id in recorded and recorded[c.id] != c.checksum]
        if edited:
            raise EditedChange(
                f"applied change(s) edited since they ran: {', '.join(edited)}; "
                "restore the files, or write a new migration (tenantdb status shows them)"
            )
        if self.renderer.target.name == "supabase" and any(c.id not in recorded for c in selected):
            missing = [what for what, query in _SUPABASE_PREREQUISITES if not conn.execute(query).fetchone()[0]]
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

    def migrate(self, to: str | None = None) -> int:
        """Apply what is pending; return how many changes and repeatables ran."""
        selected = self._select(to)
        with self._locked(), tempfile.TemporaryDirectory(prefix="tenantdb-") as tmp:
            with connect(self.dsn, autocommit=True) as conn:
                recorded, reps = self._recorded(conn)
                self._preflight(conn, recorded, selected)
                conn.execute(BOOKKEEPING)
            for change in selected:
                _write_yoyo_migration(Path(tmp), change)
            migrations = {m.id: m for m in read_migrations(tmp)}
            backend = _YoyoBackend(self.dsn)
            try:
                backend.ensure_internal_schema_updated()
                # Changed repeatables of applied changes first, all in one
                # transaction (older than anything pending), then each
                # pending change in its own.
                stale = [(c, r) for c in selected if c.id in recorded for r in c.repeatables if reps.get(r.path) != r.checksum]
                if stale:
                    with backend.transaction():
                        for change, rep in stale:
                            self._apply_repeatable(backend, change, rep)
                count = len(stale)
                for change in selected:
                    if change.id not in recorded:
                        self._apply_change(backend, migrations[change.id], change)
                        count += 1
            finally:
                backend.connection.close()
            self.mirror_client_grants()
        return count

    def mirror_client_grants(self) -> None:
        """Give organization_scoped exactly authenticated's privileges (the
        database does it: private.mirror_client_grants), where the schema
        has that function."""
        with connect(self.dsn, autocommit=True) as conn:
            if conn.execute("select to_regprocedure('private.mirror_client_grants()') is not null").fetchone()[0]:
                conn.execute("select private.mirror_client_grants()")

    def _apply_change(self, backend: _YoyoBackend, migration, change: Change) -> None:
        try:
            self._apply_change_once(backend, migration, change)
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
                for offset, statement in split_statements(sql):
                    try:
                        conn.execute(statement.encode())
                    except psycopg.Error as exc:
                        return sql.count("\n", 0, offset) + 1, statement, exc
            finally:
                conn.rollback()
        return None

    def _apply_change_once(self, backend: _YoyoBackend, migration, change: Change) -> None:
        started = time.perf_counter()
        self.echo(f"applying {change.id} ...")
        with backend.transaction():
            self._ddl_lock_timeout(backend)
            migration.load()
            for step in migration.steps:
                statement = getattr(getattr(step, "step", step), "_apply", "")
                try:
                    step.apply(backend)
                except psycopg.errors.LockNotAvailable as exc:
                    raise self._lock_waited(change.path, str(statement)) from exc
                except psycopg.Error as exc:
                    raise StatementError(change.path, str(statement), exc) from exc
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

    def _ddl_lock_timeout(self, backend: _YoyoBackend) -> None:
        """--lock-timeout bounds the wait for every lock the change's DDL
        takes, not only tenantdb's own (an ALTER queued behind a long read
        would otherwise wait, and block every later query on that table)."""
        self._execute(backend, "lock_timeout", f"set local lock_timeout = {int(self.lock_timeout * 1000)}")

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
    def rollback(self, to: str | None = None, steps: int | None = None, all_: bool = False) -> int:
        """Revert applied changes, newest first; return how many."""
        with self._locked(), tempfile.TemporaryDirectory(prefix="tenantdb-") as tmp:
            with connect(self.dsn, autocommit=True) as conn:
                recorded, _ = self._recorded(conn)
            applied = [c for c in self.changes if c.id in recorded]
            hidden = sorted(set(recorded) - {c.id for c in self.changes})
            if hidden:
                raise TenantdbError(
                    f"cannot roll back: applied change(s) {', '.join(hidden)} are not in the selection "
                    "(left out with --without, or from another release); roll back with the same changes "
                    "the database was migrated with")
            if to is not None:
                ids = [c.id for c in applied]
                if to not in ids:
                    raise UsageProblem(f"--to {to}: not an applied change (applied: {', '.join(ids) or 'none'})")
                victims = applied[ids.index(to) + 1 :]
            elif steps is not None:
                victims = applied[-steps:] if steps > 0 else []
            elif all_:
                victims = applied
            else:
                victims = applied[-1:]
            for change in victims:
                _write_yoyo_migration(Path(tmp), change)
            migrations = {m.id: m for m in read_migrations(tmp)}
            backend = _YoyoBackend(self.dsn)
            try:
                backend.ensure_internal_schema_updated()
                # All the changes of one rollback in one transaction: a change
                # that refuses (0008 with audit records, someone's view on a
                # function) leaves every later one applied, not half reverted.
                with backend.transaction():
                    self._ddl_lock_timeout(backend)
                    for change in reversed(victims):
                        started = time.perf_counter()
                        self.echo(f"reverting {change.id} ...")
                        migration = migrations[change.id]
                        # The rollback file first (it drops the change's own
                        # views and tables), then the functions of the
                        # change's repeatables with their triggers and
                        # policies: a view or default of someone else's that
                        # still uses one refuses the rollback (2BP01) instead
                        # of disappearing with it.
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
                        ms = int((time.perf_counter() - started) * 1000)
                        self.log.append({"change": change.id, "action": "reverted", "duration_ms": ms})
                        self.echo(f"undid {change.id} ({ms} ms; committed with the rest, or not at all)")
                for change in reversed(victims):
                    backend.log_migration(migrations[change.id], "rollback")
                    self.echo(f"reverted {change.id}")
            finally:
                backend.connection.close()
            self.mirror_client_grants()
        return len(victims)

    # -- seeds -----------------------------------------------------------
    def seed(self, catalog: Path | None = None) -> None:
        """Load the plan catalog (default seeds/catalog.json) through
        private.load_catalog, then the SQL seeds, in one transaction."""
        st = self.status()
        if st.pending:
            raise TenantdbError(f"cannot seed: changes pending ({', '.join(st.pending)}); run tenantdb migrate first")
        catalog_path = catalog or self.renderer.root / "seeds" / "catalog.json"
        try:
            document = json.loads(catalog_path.read_text())
        except (OSError, ValueError) as exc:
            raise TenantdbError(f"{catalog_path}: not a readable JSON catalog: {exc}") from exc
        with self._locked(), connect(self.dsn) as conn:
            started = time.perf_counter()
            try:
                written = conn.execute("select private.load_catalog(%s)", (Jsonb(document),)).fetchone()[0]
            except psycopg.Error as exc:
                raise StatementError(str(catalog_path), "select private.load_catalog(...)", exc) from exc
            ms = int((time.perf_counter() - started) * 1000)
            self.log.append({"seed": str(catalog_path), "written": written, "duration_ms": ms})
            self.echo(f"seeded {catalog_path.name}: {json.dumps(written, sort_keys=True)} ({ms} ms)")
            for relpath, sql in self.renderer.seeds():
                started = time.perf_counter()
                try:
                    conn.execute(sql.encode())
                except psycopg.Error as exc:
                    raise StatementError(relpath, sql, exc) from exc
                ms = int((time.perf_counter() - started) * 1000)
                self.log.append({"seed": relpath, "duration_ms": ms})
                self.echo(f"seeded {relpath} ({ms} ms)")
            conn.commit()
        self.mirror_client_grants()  # a seed may make a view (organization_usage_summary)

    # -- adopt: a database deployed from an export (tenantdb/adopt.py) -----
    def locked(self):
        """tenantdb's migration lock (pg_advisory_lock), as migrate holds it."""
        return self._locked()

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
        raises to record nothing). Creates the bookkeeping tables first, as
        migrate does. The caller holds the lock."""
        with tempfile.TemporaryDirectory(prefix="tenantdb-") as tmp:
            with connect(self.dsn, autocommit=True) as conn:
                conn.execute(BOOKKEEPING)
            for change in changes:
                _write_yoyo_migration(Path(tmp), change)
            migrations = {m.id: m for m in read_migrations(tmp)}
            backend = _YoyoBackend(self.dsn)
            try:
                backend.ensure_internal_schema_updated()
                with backend.transaction():
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
