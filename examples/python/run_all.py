"""Run every Python example against one database and report each.

    tenantdb up                                    # once: a local database, migrated and seeded
    python examples/python/run_all.py              # the server `tenantdb up` started in ./.tenantdb
    python examples/python/run_all.py --dsn DSN    # or DATABASE_URL (or DATABASE_URL in ./.env)
    python examples/python/run_all.py --only record_usage invoices
    python examples/python/run_all.py --json       # a JSON line per example: example, ok, seconds, summary, error

Each example runs as its own process, as you would run it
(`python examples/python/<name>.py DSN`); one line per example says ok or
FAIL, with the example's own last words, and a FAIL shows the end of its
error output. Examples make new users and slugs every run, so they can run
again and again on one database.

The DSN's role must be able to sign users up (insert into auth.users):
`tenantdb up`'s `postgres`, or a back-end login role set up as
docs/app-guide.md shows, with the sign-up grant; every other call runs
through tenantdb.client's request blocks.

Exit 0 when every example passed, 1 when one failed, 2 when there is no
database to run against or an unknown example was asked for.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parent.parent  # a tenantdb checkout, when these examples are in one
HELPERS = {"postgrest", "run_all"}  # imported by the examples or running them, not examples
# The order an app meets the calls in; an example not listed runs after these.
ORDER = ["create_organization", "invitations", "feature_access", "record_usage", "payment_webhook", "invoices", "app_flow"]


@dataclass
class Result:
    example: str
    ok: bool
    seconds: float
    summary: dict[str, Any] | None  # the example's last line of output (a JSON object)
    said: str  # what it printed before its summary
    error: str  # the end of its error output when it failed


def discover() -> list[str]:
    """The runnable examples in this directory, in ORDER, then the rest by name."""
    found = {p.stem for p in HERE.glob("*.py")} - HELPERS
    return [n for n in ORDER if n in found] + sorted(found - set(ORDER))


def example_env() -> dict[str, str]:
    """The examples' environment: in a tenantdb checkout, its package comes
    first on PYTHONPATH, so the examples run with the tenantdb they were
    written for, whatever version is installed."""
    env = dict(os.environ)
    if (CHECKOUT / "pyproject.toml").is_file() and (CHECKOUT / "tenantdb" / "client.py").is_file():
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(CHECKOUT), env.get("PYTHONPATH", "")) if p)
    return env


def run_one(name: str, dsn: str, timeout: float = 120) -> Result:
    """Run examples/python/<name>.py DSN in a new process."""
    started = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, str(HERE / f"{name}.py"), dsn], capture_output=True, text=True,
                              timeout=timeout, env=example_env())
    except subprocess.TimeoutExpired:
        return Result(name, False, time.perf_counter() - started, None, "", f"no answer after {timeout:.0f}s")
    seconds = time.perf_counter() - started
    lines = done.stdout.strip().splitlines()
    summary = None
    if lines:
        try:
            summary = json.loads(lines[-1])
        except ValueError:
            summary = None
    ok = done.returncode == 0 and isinstance(summary, dict)
    error = "" if ok else "\n".join((done.stderr.strip() or f"exit {done.returncode}, no JSON summary").splitlines()[-15:])
    said = "\n".join(lines[:-1]) if summary is not None else "\n".join(lines)
    return Result(name, ok, seconds, summary if isinstance(summary, dict) else None, said, error)


def _where(dsn: str) -> str:
    """The database, user and host of a DSN, never its password."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(dsn)
    except Exception:  # noqa: BLE001 - only for the report line
        return "the database"
    host = params.get("host") or "localhost"
    return f"database {params.get('dbname', '?')} as {params.get('user', '?')} on {host}:{params.get('port', 5432)}"


def resolve(dsn: str | None, data_dir: Path | None) -> str:
    """--dsn, DATABASE_URL, DATABASE_URL in ./.env, then the server of
    `tenantdb up` in ./.tenantdb (or --data-dir): as the tenantdb commands
    choose. Exits 2 when none gives a database."""
    from tenantdb.db import resolve_dsn
    from tenantdb.errors import TenantdbError

    try:
        chosen = resolve_dsn(dsn, data_dir)
    except TenantdbError as exc:
        print(f"run_all: {exc}", file=sys.stderr)
        sys.exit(2)
    if not chosen:
        print("run_all: no database: start one with `tenantdb up` in this directory, or give --dsn / DATABASE_URL",
              file=sys.stderr)
        sys.exit(2)
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run every Python example against one database.")
    parser.add_argument("--dsn", help="the database (default: DATABASE_URL, then the server of `tenantdb up` here)")
    parser.add_argument("--data-dir", type=Path, help="where `tenantdb up` keeps its server (default ./.tenantdb)")
    parser.add_argument("--only", nargs="+", metavar="EXAMPLE", help="run these examples only")
    parser.add_argument("--json", action="store_true", help="a JSON line per example instead of the report")
    args = parser.parse_args(argv)
    names = discover()
    if args.only:
        unknown = set(args.only) - set(names)
        if unknown:
            print(f"run_all: no example {', '.join(sorted(unknown))}; there are {', '.join(names)}", file=sys.stderr)
            return 2
        names = [n for n in names if n in args.only]
    dsn = resolve(args.dsn, args.data_dir)
    if not args.json:
        print(f"running {len(names)} examples against {_where(dsn)}")
    results = []
    for name in names:
        result = run_one(name, dsn)
        results.append(result)
        if args.json:
            print(json.dumps(asdict(result)), flush=True)
            continue
        last_words = result.said.splitlines()[-1] if result.said else ""
        print(f"{'ok' if result.ok else 'FAIL':<5} {name:<20} {result.seconds:5.1f}s  {last_words}"[:200], flush=True)
        if not result.ok:
            print("      " + result.error.replace("\n", "\n      "), flush=True)
    failed = [r.example for r in results if not r.ok]
    if not args.json:
        print(f"{len(results)} examples: {len(results) - len(failed)} ok, {len(failed)} failing"
              + (f" ({', '.join(failed)})" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
