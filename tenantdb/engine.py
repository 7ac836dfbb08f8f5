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
from .errors import EditedChange, LockTimeout, StatementError, TenantdbError
from .render import Change, Renderer, Repeatable, drop_functions_sql

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

    # -- bookkeeping -----------------------------------------------------
    def _recorded(self, conn: psycopg.Connection) -> tuple[dict[str, str], dict[str, str]]:
        if conn.execute("select to_regclass('tenantdb.changes') is not null").fetchone()[0] is False:
            return {}, {}
        targets = [r[0] for r in conn.execute("select distinct target from tenantdb.changes").fetchall()]
        if targets and targets != [self.renderer.target.name]:
            raise TenantdbError(
                f"this database was migrated with --target {', '.join(targets)}, not {self.renderer.target.name}; "
                "pass the same --target (and --api-schema) it was installed with"
            )
        changes = dict(conn.execute("select change_id, checksum from tenantdb.changes").fetchall())
        reps = dict(conn.execute("select path, checksum from tenantdb.repeatables").fetchall())
        return changes, reps

    def status(self) -> Status:
        with connect(self.dsn, autocommit=True) as conn:
            recorded, reps = self._recorded(conn)
        st = Status()
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
            raise TenantdbError(f"--to {to}: no such change (known: {', '.join(ids)})")
        return self.changes[: ids.index(to) + 1]

    def dry_run(self, to: str | None = None) -> str:
        """The SQL that migrate would run now, changing nothing."""
        with connect(self.dsn, autocommit=True) as conn:
            recorded, reps = self._recorded(conn)
        parts: list[str] = []
        for change in self._select(to):
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
                conn.execute(BOOKKEEPING)
                recorded, reps = self._recorded(conn)
            edited = [c.id for c in self.changes if c.id in recorded and recorded[c.id] != c.checksum]
            if edited:
                raise EditedChange(
                    f"applied change(s) edited since they ran: {', '.join(edited)}; "
                    "restore the files, or write a new migration (tenantdb status shows them)"
                )
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
        return count

    def _apply_change(self, backend: _YoyoBackend, migration, change: Change) -> None:
        started = time.perf_counter()
        with backend.transaction():
            migration.load()
            for step in migration.steps:
                statement = getattr(getattr(step, "step", step), "_apply", "")
                try:
                    step.apply(backend)
                except psycopg.Error as exc:
                    raise StatementError(change.path, str(statement), exc) from exc
            backend.mark_one(migration, log=False)
            duration = int((time.perf_counter() - started) * 1000)
            self._execute(
                backend,
                change.path,
                "insert into tenantdb.changes (change_id, checksum, target, duration_ms) values (%s, %s, %s, %s)",
                (change.id, change.checksum, self.renderer.target.name, duration),
            )
            for rep in change.repeatables:
                self._apply_repeatable(backend, change, rep, quiet=True)
        backend.log_migration(migration, "apply")
        self.echo(f"applied {change.id} ({int((time.perf_counter() - started) * 1000)} ms)")

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
            self.echo(f"reapplied {rep.path} ({int((time.perf_counter() - started) * 1000)} ms)")

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

    @staticmethod
    def _execute(backend: _YoyoBackend, source: str, sql: str, params: tuple | None = None) -> None:
        try:
            with backend.connection.cursor() as cur:
                cur.execute(sql, params) if params is not None else cur.execute(sql.encode())
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
                    raise TenantdbError(f"--to {to}: not an applied change (applied: {', '.join(ids) or 'none'})")
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
                for change in reversed(victims):
                    started = time.perf_counter()
                    migration = migrations[change.id]
                    with backend.transaction():
                        # The rollback file first (it drops the change's own
                        # views and tables), then the functions of the
                        # change's repeatables with their triggers and
                        # policies: a view or default of someone else's that
                        # still uses one refuses the rollback (2BP01) instead
                        # of disappearing with it.
                        migration.load()
                        for step in reversed(migration.steps):
                            statement = getattr(getattr(step, "step", step), "_rollback", "")
                            try:
                                step.rollback(backend)
                            except psycopg.Error as exc:
                                raise StatementError(change.path.replace(".sql", ".rollback.sql"), str(statement), exc) from exc
                        if change.functions:
                            self._execute(backend, change.path, drop_functions_sql(change.functions))
                        backend.unmark_one(migration, log=False)
                        self._execute(backend, change.path, "delete from tenantdb.changes where change_id = %s", (change.id,))
                    backend.log_migration(migration, "rollback")
                    self.echo(f"reverted {change.id} ({int((time.perf_counter() - started) * 1000)} ms)")
            finally:
                backend.connection.close()
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
            self.echo(f"seeded {catalog_path.name}: {json.dumps(written, sort_keys=True)} "
                      f"({int((time.perf_counter() - started) * 1000)} ms)")
            for relpath, sql in self.renderer.seeds():
                started = time.perf_counter()
                try:
                    conn.execute(sql.encode())
                except psycopg.Error as exc:
                    raise StatementError(relpath, sql, exc) from exc
                self.echo(f"seeded {relpath} ({int((time.perf_counter() - started) * 1000)} ms)")
            conn.commit()
