"""Connections: which database a command talks to, and how it connects.

The DSN is, in order: --dsn; DATABASE_URL from the environment; DATABASE_URL
from a .env file in the working directory (as dbmate reads it); the server
`tenantdb up` started in ./.tenantdb (its record); else libpq's PG*
variables (an empty conninfo). Below an app project's root, its .env and
.tenantdb (beside tenantdb.toml) count where the working directory has none.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

from .errors import ConnectError, UsageProblem

DSN_FORMS = ("postgresql://USER:PASSWORD@HOST:PORT/DBNAME?sslmode=require, "
             "or key=value pairs: host=HOST port=5432 dbname=DBNAME user=USER")


def dotenv_value(name: str, path: Path = Path(".env")) -> str | None:
    """NAME's value in a .env file (KEY=value lines, optional quotes and export)."""
    if not path.is_file():
        return None
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("export "):
            line = line[len("export "):].strip()
        key, sep, value = line.partition("=")
        if sep and key.strip() == name and not line.startswith("#"):
            value = value.strip()
            if value[:1] in ("'", '"') and value[0] in value[1:]:
                return value[1:value.index(value[0], 1)]  # quoted: up to the closing quote
            return value.split(" #", 1)[0].strip()  # unquoted: an inline comment ends it
    return None


def resolve_dsn(dsn: str | None, data_dir: Path | None = None, project: Path | None = None) -> str:
    """The conninfo to use (see the module's docstring); refuses a malformed
    one (exit 2). project: the app project's root, if any."""
    if dsn:
        chosen, source = dsn, "--dsn"
    elif os.environ.get("DATABASE_URL"):
        chosen, source = os.environ["DATABASE_URL"], "DATABASE_URL"
    elif (from_file := dotenv_value("DATABASE_URL")):
        chosen, source = from_file, "DATABASE_URL in .env"
    elif project and (from_file := dotenv_value("DATABASE_URL", project / ".env")):
        chosen, source = from_file, f"DATABASE_URL in {project / '.env'}"
    else:
        from . import embedded  # no import of the optional wheel: reading the record needs none

        directory = (data_dir or embedded.DEFAULT_DATA_DIR).resolve()
        if data_dir is None and project and not (directory / embedded.RECORD).is_file():
            directory = (project / embedded.DEFAULT_DATA_DIR).resolve()
        server = embedded.recorded(directory)
        if server is None and (directory / embedded.RECORD).is_file():
            raise ConnectError(f"the server `tenantdb up` started in {directory} is stopped: `tenantdb up` starts it again "
                               "(or give --dsn / DATABASE_URL)")
        return server.dsn if server else ""
    try:
        conninfo_to_dict(chosen)
    except psycopg.ProgrammingError as exc:
        raise UsageProblem(f"{source} is not a connection string ({_redacted(exc, chosen)}); expected {DSN_FORMS}") from None
    return chosen


def _redacted(exc: Exception | str, dsn: str) -> str:
    """libpq's message without the connection string, nor any quoted piece of
    it (a bad percent-escape is quoted as written, and it may be the
    password's): "<redacted>" instead."""
    if not dsn:  # libpq's defaults: nothing to hide (replacing "" would insert the words between every character)
        return " ".join(str(exc).split())
    text = str(exc).replace(dsn, "<the connection string>")
    text = re.sub(r'"([^"]*)"', lambda m: '"<redacted>"' if m.group(1) and m.group(1) in dsn else m.group(0), text)
    return " ".join(text.split())


def connect(dsn: str, autocommit: bool = False) -> psycopg.Connection:
    """A connection; PGCONNECT_TIMEOUT (seconds) bounds the wait, 10 s by
    default. It never prepares statements (a prepared statement lives in the
    server session, which a transaction pooler does not keep)."""
    timeout = os.environ.get("PGCONNECT_TIMEOUT", "10")
    if not timeout.isdigit():
        raise UsageProblem(f"PGCONNECT_TIMEOUT={timeout!r}: a whole number of seconds")
    try:
        given = "connect_timeout" in conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise UsageProblem(f"not a connection string ({_redacted(exc, dsn)}); expected {DSN_FORMS}") from None
    try:
        if given:
            return psycopg.connect(dsn, autocommit=autocommit, prepare_threshold=None)
        return psycopg.connect(dsn, autocommit=autocommit, connect_timeout=int(timeout), prepare_threshold=None)
    except psycopg.ProgrammingError as exc:
        raise UsageProblem(f"not a connection string ({_redacted(exc, dsn)}); expected {DSN_FORMS}") from None
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "connection failed"
        if first.removeprefix("connection is bad: ").startswith("invalid "):  # an option's value (sslmode=bogus): the DSN's fault
            raise UsageProblem(f"{_redacted(first, dsn)}; expected {DSN_FORMS}") from None
        raise ConnectError(f"cannot connect to the database: {_redacted(first, dsn)}") from None
