"""tenantdb command line: render, apply, seed and verify the schema.

Thin by design: every rule that protects data lives in the SQL.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import click

from tenantdb import __version__, export, project, scaffold, verify
from tenantdb.db import resolve_dsn
from tenantdb.engine import Engine, recorded_target
from tenantdb.errors import EXIT_FAILED, DataLoss, TenantdbError
from tenantdb.paths import SqlSource, find_sql, package_root
from tenantdb.render import PACKAGE, TARGETS, Renderer, Target, project_of

EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT


class Context:
    """The options of a run. Global options may come before the subcommand
    or after it (`tenantdb migrate --dsn ...`); the later one wins."""

    def __init__(self, dsn: str | None, target: str | None, api: str | None, debug: bool, without: tuple[str, ...] = (),
                 sql_dir: str | None = None, project_dir: str | None = None) -> None:
        self.dsn_option = dsn
        self.target_name = target
        self.api = api
        self.debug = debug
        self.without = without
        self.sql_dir = sql_dir
        self.project_dir = project_dir
        self.as_json = False
        self._app: project.AppProject | None | bool = False  # False: not looked for yet

    @property
    def app(self) -> project.AppProject | None:
        """The app project: --project DIR, else the tenantdb.toml around the
        working directory, else none. Its [database] settings are the
        defaults of --target, --api-schema and --without."""
        if self._app is False:
            try:
                if self.project_dir:
                    root = Path(self.project_dir)
                    if not (root / project.CONFIG).is_file():
                        raise click.UsageError(f"--project {root}: no {project.CONFIG} there (tenantdb init {root} makes one)")
                    self._app = project.load(root)
                else:
                    self._app = project.find()
            except project.ProjectError as exc:
                raise click.UsageError(str(exc)) from exc
            if self._app:
                self.target_name = self.target_name or self._app.target
                self.api = self.api or self._app.api
                self.without = self.without or self._app.without
        return self._app or None

    @property
    def target(self) -> Target:
        """--target and --api-schema; where not given, what the database
        recorded (read by engine()), else postgres and public."""
        try:
            return Target(self.target_name or "postgres", self.api or "public")
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc

    @property
    def source(self) -> SqlSource:
        """The package's SQL: --sql-dir, else (in an app project) the
        installed package's, else the checkout around the working directory."""
        try:
            if self.app is not None and not (self.sql_dir or os.environ.get("TENANTDB_SQL_DIR")):
                return SqlSource(package_root(), "package")
            return find_sql(self.sql_dir)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc

    def describe(self) -> str:
        """Where the SQL comes from: the package's, and the app's."""
        app = self.app
        return self.source.describe() + (f"; {app.describe()}" if app else "")

    @property
    def renderer(self) -> Renderer:
        app = self.app  # reads tenantdb.toml first: its target and api are defaults
        renderer = Renderer(self.target, root=self.source.root, without=self.without, app=app)
        try:
            renderer.changes()
        except ValueError as exc:
            if app and app.without and self.without == app.without and str(exc).startswith("--without "):
                raise click.UsageError(f"{app.config_path}: database.without: {str(exc).removeprefix('--without ')}") from exc
            raise click.UsageError(str(exc)) from exc
        return renderer

    def say(self, line: str) -> None:
        """Progress lines: stdout, or stderr when stdout carries JSON."""
        click.echo(line, err=self.as_json)

    def settle(self, dsn: str) -> Target:
        """The target: --target and --api-schema where given, else the app
        project's tenantdb.toml, else what the database recorded when it
        was migrated, else postgres and public."""
        self.app  # noqa: B018 - reads tenantdb.toml's defaults
        if self.target_name is None or self.api is None:
            target, api = recorded_target(dsn)
            self.target_name = self.target_name or target
            self.api = self.api or api
        return self.target

    def dsn(self) -> str:
        """The connection string: --dsn, DATABASE_URL, .env, `tenantdb up`'s
        server, libpq's defaults (tenantdb.db); in an app project, its .env
        and .tenantdb beside tenantdb.toml where the working directory has none."""
        app = self.app
        return resolve_dsn(self.dsn_option, project=app.root if app else None)

    def engine(self, lock_timeout: float = 60.0, dsn: str | None = None) -> Engine:
        dsn = dsn or self.dsn()
        self.settle(dsn)
        return Engine(dsn, self.renderer, echo=self.say, lock_timeout=lock_timeout)


pass_ctx = click.make_pass_decorator(Context)
yes_option = click.option("--yes", is_flag=True,
                          help="Drop what it would drop (tables holding rows, columns holding values) without asking.")
lock_option = click.option("--lock-timeout", default=60.0, show_default=True, type=click.FloatRange(min=0.001),
                           help="Seconds to wait for a lock: tenantdb's own, and each one its DDL takes.")


def _set(attr: str) -> Callable:
    def callback(ctx: click.Context, _param: click.Parameter, value: object) -> None:
        if value not in (None, (), False):
            setattr(ctx.find_object(Context), attr, value)
    return callback


def global_options(f: Callable) -> Callable:
    """The group's options, accepted after the subcommand too."""
    for option in reversed([
        click.option("--dsn", expose_value=False, callback=_set("dsn_option"), help="Connection string (see tenantdb --help)."),
        click.option("--target", type=click.Choice(TARGETS), expose_value=False, callback=_set("target_name"),
                     help="postgres or supabase."),
        click.option("--api-schema", expose_value=False, callback=_set("api"), help="Schema holding the callable API."),
        click.option("--without", multiple=True, metavar="CHANGE", expose_value=False, callback=_set("without"),
                     help="Leave out an optional change."),
        click.option("--sql-dir", metavar="DIR", expose_value=False, callback=_set("sql_dir"), help="Use the SQL in DIR."),
        click.option("--project", metavar="DIR", expose_value=False, callback=_set("project_dir"),
                     help="The app project in DIR (where its tenantdb.toml is)."),
        click.option("--debug", is_flag=True, expose_value=False, callback=_set("debug"), help="Show tracebacks."),
    ]):
        f = option(f)
    return f


def json_option(f: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, expose_value=False, callback=_set("as_json"),
                        help="Print the result as JSON on stdout (progress goes to stderr).")(f)


def emit(c: Context, data: object) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def with_consent(c: Context, yes: bool, run: Callable[[bool], int]) -> int:
    """run(allow_data_loss). Without --yes, a run that would drop data is
    refused (DataLoss, exit 6, nothing changed); at a terminal the list is
    shown and the question asked, and on yes the run is made again."""
    try:
        return run(yes)
    except DataLoss as exc:
        if yes or c.as_json or not sys.stdin.isatty():
            raise
        click.echo("\n".join(str(exc).splitlines()[:-1]), err=True)
        if not click.confirm("drop it?", default=False, err=True):
            raise
        return run(True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="tenantdb")
@click.option("--dsn", envvar=None,
              help="Connection string; default DATABASE_URL, then DATABASE_URL in ./.env, then the server of "
                   "`tenantdb up` in ./.tenantdb, then libpq's PG* variables.")
@click.option("--target", type=click.Choice(TARGETS),
              help="postgres: create the Supabase auth shim where missing; supabase: use Supabase's auth. "
                   "Default: the one the database was migrated with, else postgres.")
@click.option("--api-schema", help="Schema holding the callable API. Default: the database's, else public.")
@click.option("--without", multiple=True, metavar="CHANGE", envvar="TENANTDB_WITHOUT",
              help="Leave out an optional change (e.g. 0016_client_services); repeatable. Env: TENANTDB_WITHOUT.")
@click.option("--sql-dir", metavar="DIR", envvar="TENANTDB_SQL_DIR",
              help="Use the SQL in DIR (default: the project checkout around the working directory, else the package's).")
@click.option("--project", "project_dir", metavar="DIR", envvar="TENANTDB_PROJECT",
              help="The app project in DIR (default: the directory around the working directory holding "
                   "tenantdb.toml, if any). Env: TENANTDB_PROJECT.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.pass_context
def cli(ctx: click.Context, dsn: str | None, target: str | None, api_schema: str | None, without: tuple[str, ...], sql_dir: str | None,
        project_dir: str | None, debug: bool) -> None:
    """tenantdb: the database half of a multi-tenant SaaS, as versioned SQL.

    In an app project (a directory made by `tenantdb init`, holding
    tenantdb.toml) every command applies, shows and checks the package's
    changes and the app's together."""
    ctx.obj = Context(dsn, target, api_schema, debug, without, sql_dir, project_dir)


@cli.command()
@click.option("--to", "to", metavar="CHANGE", help="Apply up to and including this change.")
@click.option("--dry-run", is_flag=True, help="Print the SQL that would run; change nothing (refuses as migrate would).")
@yes_option
@lock_option
@json_option
@global_options
@pass_ctx
def migrate(c: Context, to: str | None, dry_run: bool, yes: bool, lock_timeout: float) -> None:
    """Apply pending changes, a line when each starts and ends, with its duration."""
    engine = c.engine(lock_timeout)
    to = engine.change_named(to)
    if dry_run:
        click.echo(c.describe(), err=True)  # stdout is the SQL alone
        sql = engine.dry_run(to)
        if c.as_json:
            emit(c, {"dry_run": True, "sql": sql})
        elif sql:
            click.echo(sql)
        else:
            click.echo("nothing to apply", err=True)  # stdout stays SQL: empty
        return
    c.say(c.describe())
    count = with_consent(c, yes, lambda allow: engine.migrate(to, allow_data_loss=allow))
    if c.as_json:
        emit(c, {"applied": engine.log, "count": count})
    elif count == 0:
        click.echo("nothing to apply")


@cli.command()
@json_option
@global_options
@pass_ctx
def status(c: Context) -> None:
    """Applied changes (when, how long), pending, edited, and changed repeatables."""
    engine = c.engine()
    st = engine.status()
    where = engine.database()
    if c.as_json:
        emit(c, {**st.as_dict(), "sql": str(c.source.root), "sql_source": c.source.kind, "database": where})
        return
    click.echo(f"database {where['dbname']} on {where['host']}:{where['port']} as {where['user']} "
               f"(--target {c.target.name}, --api-schema {c.target.api})")
    click.echo(c.describe())
    if st.unmanaged:
        click.echo(f"no tenantdb history, but tenantdb's schemas are here ({st.unmanaged}): deployed from an export? "
                   f"take it over with: {engine.adopt_hint()}")
    histories = [PACKAGE] + ([c.app.name] if c.app else [])
    histories += sorted({project_of(cid) for cid in st.unknown} - set(histories))
    for name in histories if len(histories) > 1 else []:  # one line per history: the package's, the app's
        count = lambda ids: sum(1 for cid in ids if project_of(cid) == name)  # noqa: E731
        what = f"tenantdb {__version__} (the package)" if name == PACKAGE else \
            f"app {name}" + (f" ({c.app.root})" if c.app and c.app.name == name else " (not this project's)")
        click.echo(f"{what}: {count(st.applied)} applied, {count(st.pending)} pending"
                   + (f", {count(st.unknown)} unknown" if count(st.unknown) else ""))
    for cid in st.applied:
        when = f"  {st.applied_at.get(cid, '')}  {st.duration_ms.get(cid, 0)} ms"
        click.echo(f"applied  {cid}{when}" + ("  EDITED since applied" if cid in st.edited else ""))
    for cid in st.pending:
        click.echo(f"pending  {cid}")
    for path in st.stale_repeatables:
        click.echo(f"changed  {path}  (re-applied by the next migrate)")
    for cid in st.unknown:
        why = "applied by that app project: run status in it" if project_of(cid) != PACKAGE else \
            "applied, not in this package or left out with --without"
        click.echo(f"unknown  {cid}  ({why})")


@cli.command()
@click.option("--to", "to", metavar="CHANGE", help="Revert everything applied after this change.")
@click.option("--steps", type=click.IntRange(min=1), help="Revert the newest N changes.")
@click.option("--all", "all_", is_flag=True, help="Revert every change.")
@click.option("--cascade", is_flag=True,
              help="Also revert the app changes applied after a package change being reverted (refused without it).")
@yes_option
@lock_option
@json_option
@global_options
@pass_ctx
def rollback(c: Context, to: str | None, steps: int | None, all_: bool, cascade: bool, yes: bool,
             lock_timeout: float) -> None:
    """Revert applied changes, newest first (default: the newest one), all or nothing.

    A rollback that would drop tables holding rows (or columns holding
    values) lists them with their counts and needs --yes (asked at a
    terminal); without it nothing is reverted (exit 6). In an app project,
    a rollback that would revert package changes and app changes together
    names the app changes and what each needs, and needs --cascade (exit 2)."""
    if sum(x is not None and x is not False for x in (to, steps, all_)) > 1:
        raise click.UsageError("choose one of --to, --steps, --all")
    engine = c.engine(lock_timeout)
    to = engine.change_named(to)
    c.say(c.describe())
    count = with_consent(c, yes, lambda allow: engine.rollback(to, steps, all_, allow_data_loss=allow,
                                                                       cascade=cascade))
    if c.as_json:
        emit(c, {"reverted": engine.log, "count": count})
    elif count == 0:
        click.echo("nothing to revert")


@cli.command()
@click.option("--catalog", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Load this plan catalog instead of seeds/catalog.json (same format: seeds/catalog.schema.json).")
@json_option
@global_options
@pass_ctx
def seed(c: Context, catalog: Path | None) -> None:
    """Load the seeds: roles, permissions, mappings, and the plan catalog. Idempotent."""
    engine = c.engine()
    engine.seed(catalog)
    if c.as_json:
        emit(c, {"seeded": engine.log})


@cli.command("verify")
@json_option
@global_options
@pass_ctx
def verify_cmd(c: Context) -> None:
    """Exit 0 only if every change is applied, unedited, and the invariants hold."""
    found = verify.problems(c.engine())
    if c.as_json:
        click.echo(json.dumps({"ok": not found, "problems": verify.as_json(found)}, indent=2))
    else:
        for p in found:
            click.echo(f"{p.check}: {p.object}: {p.detail}")
        click.echo("ok" if not found else f"{len(found)} problem(s)")
    if found:
        sys.exit(EXIT_FAILED)


@cli.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Write one file per change here.")
@global_options
@pass_ctx
def render(c: Context, out: Path | None) -> None:
    """Print (or write) the SQL exactly as it would run for the target."""
    changes = c.renderer.changes()
    if out is None:
        click.echo("\n".join(export.deploy_sql(ch) for ch in changes), nl=False)
        return
    for ch in changes:
        folder = out / ch.project if ch.is_app else out  # an app's: in a folder of its name, as export sqitch writes them
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{ch.local_id}.sql").write_text(export.deploy_sql(ch))
        (folder / f"{ch.local_id}.rollback.sql").write_text(export.revert_sql(ch))
    click.echo(f"wrote {2 * len(changes)} files to {out}")


@cli.group("export")
def export_group() -> None:
    """Write the changes for another tool."""


@export_group.command("sqitch")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@global_options
@pass_ctx
def export_sqitch(c: Context, directory: Path) -> None:
    """A sqitch project: sqitch.plan, deploy/, revert/, verify/, and seed.sql (run it after sqitch deploy).

    In an app project the app's changes are a sqitch project of their own in
    DIRECTORY/<app name>/, requiring the package's: deploy the package's
    project, then the app's, then run seed.sql."""
    renderer = c.renderer
    changes = renderer.changes()
    written = export.sqitch(changes, directory, seed=export.seed_sql(renderer))
    click.echo(f"wrote {len(written)} files to {directory}"
               + (f" (the app's sqitch project: {directory / c.app.name})" if c.app else ""))
    newest = next((ch.id for ch in reversed(changes) if not ch.is_app), None)
    for ch in [ch for ch in changes if ch.is_app and not ch.requires]:
        click.echo(f"note: {ch.path} names no package change it requires, so in sqitch it requires the newest "
                   f"({newest}); a package upgrade changes that, and sqitch then refuses to deploy the new export over "
                   "this one: add a `-- tenantdb: requires CHANGE` line",
                   err=True)


@export_group.command("supabase")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@global_options
@pass_ctx
def export_supabase(c: Context, directory: Path) -> None:
    """supabase/migrations/<timestamp>_<name>.sql and supabase/seed.sql for the Supabase CLI (supabase target).

    In an app project the app's migrations follow the package's."""
    app = c.app  # reads tenantdb.toml first: its api_schema and without are defaults
    renderer = Renderer(Target("supabase", c.api or "public"), root=c.source.root, without=c.without, app=app)
    try:
        changes = renderer.changes()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    written = export.supabase(changes, directory, seed=export.seed_sql(renderer))
    click.echo(f"wrote {len(written)} files to {directory / 'supabase'} (migrations/, seed.sql)")


def _project(c: Context) -> tuple[Path, str | None]:
    """(the directory `new` writes in, the package change a new app migration requires)."""
    if c.app is not None:
        package = Renderer(c.target, root=c.source.root, without=c.without)
        try:
            newest = package.changes()[-1].id
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc
        return c.app.root, newest
    source = c.source
    if source.kind == "package":
        raise click.UsageError("run `tenantdb new` in an app project (make one with `tenantdb init DIR`), or in a "
                               "checkout of tenantdb itself: the installed package's SQL is not yours to edit")
    return source.root, None


@cli.command("new")
@click.argument("kind", type=click.Choice(["migration", "function", "policy"]))
@click.argument("name")
@global_options
@pass_ctx
def new(c: Context, kind: str, name: str) -> None:
    """Start a file in the project's SQL, like sqitch add or dbmate new.

    \b
    migration NAME: migrations/NNNN_NAME.sql and its .rollback.sql, numbered after the last
    function NAME:  functions/NNNN_NAME.sql, a repeatable of the newest migration
    policy NAME:    policies/NNNN_NAME.sql, likewise

    In an app project the numbers are the app's own (0001, 0002, ...), and a
    new migration requires the installed package's newest change."""
    root, requires = _project(c)
    try:
        if kind == "migration":
            written = scaffold.new_migration(root, name, requires=requires)
        else:
            written = [scaffold.new_repeatable(root, "functions" if kind == "function" else "policies", name,
                                               app=requires is not None)]
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    for path in written:
        click.echo(f"wrote {path}")


@cli.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=Path("."))
@click.option("--name", help="The app's name, which marks its changes in the database (default: from DIRECTORY).")
@click.option("--target", "init_target", type=click.Choice(TARGETS), default="postgres", show_default=True,
              help="The target written to tenantdb.toml.")
@click.option("--api-schema", "init_api", default="public", show_default=True,
              help="The API schema written to tenantdb.toml.")
def init(directory: Path, name: str | None, init_target: str, init_api: str) -> None:
    """Make an app project in DIRECTORY (default: here): tenantdb.toml,
    migrations/, functions/, policies/, seeds/ and a README saying what goes
    where. The package stays installed, not copied: `pip install -U tenantdb`
    then `tenantdb migrate` upgrades it under the app."""
    try:
        written = scaffold.init_project(directory, name or project.default_name(directory), init_target, init_api)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(f"next: cd {directory} && tenantdb new migration <name>  (then tenantdb migrate, tenantdb seed)")


data_dir_option = click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path(".tenantdb"),
                               show_default=True, help="Where the embedded server keeps its data.")


@cli.command()
@data_dir_option
@global_options
@pass_ctx
def up(c: Context, data_dir: Path) -> None:
    """Start a local PostgreSQL (embedded), migrate and seed it; print its DSN last."""
    from tenantdb import embedded  # the embedded server is an optional extra

    from tenantdb import devdb

    started = time.perf_counter()
    server = embedded.start(data_dir, say=lambda line: click.echo(line, err=True))
    devdb.mark(server.dsn)  # reset may drop it without --force
    engine = c.engine(dsn=server.dsn)
    if engine.migrate() == 0:
        click.echo("nothing to apply")
    engine.seed()
    click.echo(f"ready in {time.perf_counter() - started:.1f}s; TCP: {server.tcp_dsn}", err=True)
    click.echo(f"other tenantdb commands run here find it; stop it with: tenantdb down --data-dir {data_dir}", err=True)
    click.echo(server.dsn)


@cli.command()
@data_dir_option
def down(data_dir: Path) -> None:
    """Stop the embedded server started by `tenantdb up`."""
    from tenantdb import embedded

    click.echo("stopped" if embedded.stop(data_dir) else f"no server running in {data_dir}")


@cli.command()
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True, help="Reset a database that tenantdb did not make for development.")
@global_options
@pass_ctx
def reset(c: Context, yes: bool, force: bool) -> None:
    """Drop the database and make it again: migrate, seed. For development databases.

    Only a database made by `tenantdb up` or `tenantdb reset` (they mark it
    with a comment on the database), or marked so by hand, unless --force."""
    from tenantdb import devdb, pooling

    dsn = c.dsn()
    if c.settle(dsn).name == "supabase":  # --target supabase, or a database migrated for it
        raise click.UsageError("tenantdb reset drops the database, and with it Supabase's own auth schema: "
                               "use `supabase db reset` for a Supabase database")
    name, where = devdb.check_resettable(dsn, force)
    pooling.refuse_transaction_pooler(dsn)
    if not yes:
        click.confirm(f"drop database {name} on {where} with all its data, and make it again?", abort=True)
    devdb.recreate(dsn)
    click.echo(f"dropped and created {name}", err=True)
    engine = c.engine(dsn=dsn)
    engine.migrate()
    engine.seed()


@cli.command()
@click.option("--to", "to", metavar="CHANGE", help="Adopt up to and including this change (an older export).")
@click.option("--dry-run", is_flag=True, help="Check, and list what would be recorded; change nothing.")
@lock_option
@json_option
@global_options
@pass_ctx
def adopt(c: Context, to: str | None, dry_run: bool, lock_timeout: float) -> None:
    """Take over a database deployed from an export (sqitch, Supabase): record its changes, if it matches the package."""
    from tenantdb import adopt as adopting

    engine = c.engine(lock_timeout)
    to = engine.change_named(to)
    c.say(c.describe())
    report = adopting.adopt(engine, to, dry_run)
    if c.as_json:
        emit(c, {**report.as_dict(), "dry_run": dry_run})
    elif report.managed:
        click.echo(f"already managed by tenantdb ({report.managed} change(s) recorded): nothing to adopt; see tenantdb status")
    else:
        last = report.changes[-1].id
        options = f"--target {c.target.name} --api-schema {c.target.api}"
        if dry_run:
            for ch in report.changes:
                click.echo(f"would record {ch.id}  sha256 {ch.checksum[:12]}  ({len(ch.repeatables)} repeatable(s))")
            click.echo(f"matches: {len(report.changes)} change(s) up to {last} would be recorded ({options}; "
                       f"deployed changes known from {report.source}); nothing was recorded")
        else:
            click.echo(f"adopted {len(report.changes)} change(s) up to {last} ({options}; deployed changes known from "
                       f"{report.source}): status, verify, seed and migrate now work on it")


@cli.command("docs")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@global_options
@pass_ctx
def docs_cmd(c: Context, out: Path) -> None:
    """Markdown pages of the live schema in OUT: diagrams, tables, who may do what."""
    from tenantdb import docs

    app = c.app
    written = docs.write(c.dsn(), out, app_schemas=app.schemas if app else ())
    click.echo(f"wrote {len(written)} files to {out}")


@cli.command("types")
@click.argument("lang", type=click.Choice(["typescript"]))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file (default: stdout).")
@global_options
@pass_ctx
def types_cmd(c: Context, lang: str, out: Path | None) -> None:
    """Client types of the live schema. typescript: the `Database` type of
    supabase-js (createClient<Database>), as `supabase gen types typescript`
    writes it: the API schema's functions, views and tables, and every schema
    with a table or view role authenticated may read."""
    from tenantdb import typegen

    text = typegen.generate(c.dsn(), c.api, lang)
    if out is None:
        click.echo(text, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8", newline="\n")
    click.echo(f"wrote {out}")


def fail(message: str, code: int) -> None:
    """Exit with code: the message on stderr, and with --json also as a JSON
    object on stdout ({"error": ..., "exit_code": ...}), where a script reads."""
    click.echo(message, err=True)
    if "--json" in sys.argv[1:]:
        click.echo(json.dumps({"error": message.removeprefix("tenantdb: ").strip(), "exit_code": code}))
    sys.exit(code)


def main() -> None:
    debug = "--debug" in sys.argv
    interrupted = "interrupted: the change in progress was rolled back by PostgreSQL"
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):  # click turns Ctrl-C into Abort
            fail(interrupted, EXIT_INTERRUPTED)
        fail("aborted", EXIT_FAILED)
    except click.ClickException as exc:
        if "--json" in sys.argv[1:]:
            fail(f"{exc.format_message()}", exc.exit_code)
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        fail(interrupted, EXIT_INTERRUPTED)
    except TenantdbError as exc:
        if debug:
            traceback.print_exc()
        fail(f"tenantdb: {exc}", exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: a message, not a traceback
        if debug:
            traceback.print_exc()
        fail(f"tenantdb: unexpected error: {type(exc).__name__}: {exc} (rerun with --debug)", EXIT_FAILED)


if __name__ == "__main__":
    main()
