"""tenantdb command line: render, apply, seed and verify the schema.

Thin by design: every rule that protects data lives in the SQL.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

import click

from tenantdb import export, verify
from tenantdb.db import resolve_dsn
from tenantdb.engine import Engine
from tenantdb.errors import EXIT_FAILED, TenantdbError
from tenantdb.paths import SqlSource, find_sql
from tenantdb.render import TARGETS, Renderer, Target


class Context:
    def __init__(self, dsn: str | None, target: str, api: str, debug: bool, without: tuple[str, ...] = (),
                 sql_dir: str | None = None) -> None:
        self.dsn_option = dsn
        self.target = Target(target, api)
        self.debug = debug
        self.without = without
        self.sql_dir = sql_dir

    @property
    def source(self) -> SqlSource:
        try:
            return find_sql(self.sql_dir)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc

    @property
    def renderer(self) -> Renderer:
        renderer = Renderer(self.target, root=self.source.root, without=self.without)
        try:
            renderer.changes()
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc
        return renderer

    def engine(self, lock_timeout: float = 60.0, dsn: str | None = None) -> Engine:
        return Engine(dsn or resolve_dsn(self.dsn_option), self.renderer, echo=click.echo, lock_timeout=lock_timeout)


pass_ctx = click.make_pass_decorator(Context)
lock_option = click.option("--lock-timeout", default=60.0, show_default=True, type=float,
                           help="Seconds to wait for another run's migration lock.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--dsn", envvar=None, help="Connection string; default DATABASE_URL, then libpq's PG* variables.")
@click.option("--target", type=click.Choice(TARGETS), default="postgres", show_default=True,
              help="postgres: create the Supabase auth shim where missing; supabase: use Supabase's auth.")
@click.option("--api-schema", default="public", show_default=True, help="Schema holding the callable API.")
@click.option("--without", multiple=True, metavar="CHANGE", envvar="TENANTDB_WITHOUT",
              help="Leave out an optional change (e.g. 0016_client_services); repeatable. Env: TENANTDB_WITHOUT.")
@click.option("--sql-dir", metavar="DIR", envvar="TENANTDB_SQL_DIR",
              help="Use the SQL in DIR (default: the project checkout around the working directory, else the package's).")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.pass_context
def cli(ctx: click.Context, dsn: str | None, target: str, api_schema: str, without: tuple[str, ...], sql_dir: str | None,
        debug: bool) -> None:
    """tenantdb: the database half of a multi-tenant SaaS, as versioned SQL."""
    ctx.obj = Context(dsn, target, api_schema, debug, without, sql_dir)


@cli.command()
@click.option("--to", "to", metavar="CHANGE", help="Apply up to and including this change.")
@click.option("--dry-run", is_flag=True, help="Print the SQL that would run; change nothing.")
@lock_option
@pass_ctx
def migrate(c: Context, to: str | None, dry_run: bool, lock_timeout: float) -> None:
    """Apply pending changes, one line per change with its duration."""
    engine = c.engine(lock_timeout)
    if dry_run:
        click.echo(engine.dry_run(to))
        return
    count = engine.migrate(to)
    if count == 0:
        click.echo("nothing to apply")


@cli.command()
@pass_ctx
def status(c: Context) -> None:
    """List applied, pending and edited changes."""
    st = c.engine().status()
    for cid in st.applied:
        click.echo(f"applied  {cid}" + ("  EDITED since applied" if cid in st.edited else ""))
    for cid in st.pending:
        click.echo(f"pending  {cid}")
    for path in st.stale_repeatables:
        click.echo(f"changed  {path}  (re-applied by the next migrate)")
    for cid in st.unknown:
        click.echo(f"unknown  {cid}  (applied, not in this package)")


@cli.command()
@click.option("--to", "to", metavar="CHANGE", help="Revert everything applied after this change.")
@click.option("--steps", type=click.IntRange(min=1), help="Revert the newest N changes.")
@click.option("--all", "all_", is_flag=True, help="Revert every change.")
@lock_option
@pass_ctx
def rollback(c: Context, to: str | None, steps: int | None, all_: bool, lock_timeout: float) -> None:
    """Revert applied changes, newest first (default: the newest one)."""
    if sum(x is not None and x is not False for x in (to, steps, all_)) > 1:
        raise click.UsageError("choose one of --to, --steps, --all")
    if c.engine(lock_timeout).rollback(to, steps, all_) == 0:
        click.echo("nothing to revert")


@cli.command()
@click.option("--catalog", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Load this plan catalog instead of seeds/catalog.json (same format).")
@pass_ctx
def seed(c: Context, catalog: Path | None) -> None:
    """Load the seeds: roles, permissions, mappings, and the plan catalog. Idempotent."""
    c.engine().seed(catalog)


@cli.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print the problems as JSON.")
@pass_ctx
def verify_cmd(c: Context, as_json: bool) -> None:
    """Exit 0 only if every change is applied, unedited, and the invariants hold."""
    found = verify.problems(c.engine())
    if as_json:
        click.echo(json.dumps({"ok": not found, "problems": verify.as_json(found)}, indent=2))
    else:
        for p in found:
            click.echo(f"{p.check}: {p.object}: {p.detail}")
        click.echo("ok" if not found else f"{len(found)} problem(s)")
    if found:
        sys.exit(EXIT_FAILED)


@cli.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Write one file per change here.")
@pass_ctx
def render(c: Context, out: Path | None) -> None:
    """Print (or write) the SQL exactly as it would run for the target."""
    changes = c.renderer.changes()
    if out is None:
        click.echo("\n".join(export.deploy_sql(ch) for ch in changes), nl=False)
        return
    out.mkdir(parents=True, exist_ok=True)
    for ch in changes:
        (out / f"{ch.id}.sql").write_text(export.deploy_sql(ch))
        (out / f"{ch.id}.rollback.sql").write_text(export.revert_sql(ch))
    click.echo(f"wrote {2 * len(changes)} files to {out}")


@cli.group("export")
def export_group() -> None:
    """Write the changes for another tool."""


@export_group.command("sqitch")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@pass_ctx
def export_sqitch(c: Context, directory: Path) -> None:
    """A sqitch project: sqitch.plan, deploy/, revert/, verify/."""
    written = export.sqitch(c.renderer.changes(), directory)
    click.echo(f"wrote {len(written)} files to {directory}")


@export_group.command("supabase")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@pass_ctx
def export_supabase(c: Context, directory: Path) -> None:
    """supabase/migrations/<timestamp>_<name>.sql for the Supabase CLI (supabase target)."""
    changes = Renderer(Target("supabase", c.target.api), without=c.without).changes()
    written = export.supabase(changes, directory)
    click.echo(f"wrote {len(written)} files to {directory / 'supabase' / 'migrations'}")


@cli.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path(".tenantdb"),
              show_default=True, help="Where the embedded server keeps its data.")
@pass_ctx
def up(c: Context, data_dir: Path) -> None:
    """Start a local PostgreSQL (embedded), migrate and seed it; print its DSN last."""
    from tenantdb import embedded  # the embedded server is an optional extra

    started = time.perf_counter()
    dsn = embedded.start(data_dir)
    engine = c.engine(dsn=dsn)
    if engine.migrate() == 0:
        click.echo("nothing to apply")
    engine.seed()
    click.echo(f"ready in {time.perf_counter() - started:.1f}s; stop it with: tenantdb down --data-dir {data_dir}", err=True)
    click.echo(dsn)


@cli.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path(".tenantdb"),
              show_default=True)
def down(data_dir: Path) -> None:
    """Stop the embedded server started by `tenantdb up`."""
    from tenantdb import embedded

    click.echo("stopped" if embedded.stop(data_dir) else f"no server running in {data_dir}")


@cli.command("docs")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@pass_ctx
def docs_cmd(c: Context, out: Path) -> None:
    """Markdown pages of the live schema in OUT: diagrams, tables, who may do what."""
    from tenantdb import docs

    written = docs.write(resolve_dsn(c.dsn_option), out)
    click.echo(f"wrote {len(written)} files to {out}")


def main() -> None:
    debug = "--debug" in sys.argv
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(EXIT_FAILED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except TenantdbError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"tenantdb: {exc}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: a message, not a traceback
        if debug:
            traceback.print_exc()
        click.echo(f"tenantdb: unexpected error: {type(exc).__name__}: {exc} (rerun with --debug)", err=True)
        sys.exit(EXIT_FAILED)


if __name__ == "__main__":
    main()
