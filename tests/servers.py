"""Servers the tests start next to the harness's PostgreSQL: a pgbouncer
in front of it (Debian's pgbouncer package; scripts/test.sh installs it).

pgbouncer refuses to run as root: as root it runs as the same unprivileged
OS user as the harness's server (TENANTDB_PG_USER, default postgres; the
user runuser -u would switch to, set by Popen itself), with
its config, log and pid file in a temporary directory that user owns.
Nothing here uses the package's system service or /etc/pgbouncer.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

POOL_MODES = ("session", "transaction", "statement")


def pgbouncer_binary() -> str:
    """The pgbouncer executable; an error (not a skip) when it is missing."""
    found = shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(p, os.X_OK)), None)
    if not found:
        raise RuntimeError("pgbouncer is not installed: scripts/test.sh installs it (Debian package pgbouncer)")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class Pgbouncer:
    """A running pgbouncer: conninfo(dbname) reaches any database of the
    upstream server by name, through the pool."""

    host: str
    port: int
    user: str  # the login user clients use by default (the harness's)
    pool_mode: str
    workdir: Path
    proc: subprocess.Popen
    upstream: tuple[str, int]
    _siblings: dict[str, Pgbouncer] = field(default_factory=dict, repr=False)

    def conninfo(self, dbname: str, user: str | None = None, **extra: object) -> str:
        return make_conninfo(host=self.host, port=self.port, user=user or self.user, dbname=dbname, **extra)

    def reroute(self, dsn: str) -> str:
        """The harness's conninfo of a database (e.g. the `dsn` fixture), through this pooler."""
        params = conninfo_to_dict(dsn)
        params.update(host=self.host, port=self.port)
        params.pop("password", None)
        return make_conninfo(**params)

    def admin(self, command: str) -> list[tuple]:
        """A command of pgbouncer's admin console (SHOW POOLS, RECONNECT db, ...)."""
        with psycopg.connect(self.conninfo("pgbouncer"), autocommit=True) as conn:
            # The console speaks the simple query protocol only.
            cur = psycopg.ClientCursor(conn)
            cur.execute(command)
            return cur.fetchall() if cur.description else []

    def close_server_connections(self, dbname: str) -> None:
        """Close the pool's connections to dbname now (KILL, then RESUME so
        new clients are served again): e.g. after a test left them dirty."""
        self.admin(f'KILL "{dbname}"')
        self.admin(f'RESUME "{dbname}"')

    def with_mode(self, pool_mode: str) -> Pgbouncer:
        """A pooler with another pool_mode in front of the same server
        (started on first use on a port of its own; stopped with this one)."""
        if pool_mode == self.pool_mode:
            return self
        if pool_mode not in self._siblings:
            self._siblings[pool_mode] = start_pgbouncer(*self.upstream, user=self.user, pool_mode=pool_mode)
        return self._siblings[pool_mode]

    def log(self) -> str:
        path = self.workdir / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        for sibling in self._siblings.values():
            sibling.stop()
        self._siblings.clear()
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: immediate shutdown (SIGINT would wait for clients)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_pgbouncer(upstream_host: str, upstream_port: int, user: str = "postgres", pool_mode: str = "transaction",
                    pool_size: int = 4, max_client_conn: int = 100) -> Pgbouncer:
    """Start pgbouncer on 127.0.0.1 and a free port in front of
    upstream_host:upstream_port. Every database name goes through
    ([databases] *); clients log in as `user` (trust, listed in the
    auth file), as do the server connections."""
    assert pool_mode in POOL_MODES, pool_mode
    binary = pgbouncer_binary()
    as_root = os.geteuid() == 0
    os_user = os.environ.get("TENANTDB_PG_USER", "postgres") if as_root else None
    workdir = Path(tempfile.mkdtemp(prefix=f"pgbouncer-{pool_mode}-"))
    port = free_port()
    (workdir / "userlist.txt").write_text(f'"{user}" ""\n')
    (workdir / "pgbouncer.ini").write_text(f"""\
[databases]
* = host={upstream_host} port={upstream_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
logfile = {workdir}/pgbouncer.log
pidfile = {workdir}/pgbouncer.pid
auth_type = trust
auth_file = {workdir}/userlist.txt
admin_users = {user}
pool_mode = {pool_mode}
default_pool_size = {pool_size}
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = {max_client_conn}
ignore_startup_parameters = extra_float_digits,options
""")
    as_user: dict = {}
    if as_root:
        # What runuser -u would do, but pgbouncer stays our direct child: a
        # SIGTERM reaches it at once (runuser forwards it, then waits 2 s
        # and leaves a zombie behind).
        entry = pwd.getpwnam(os_user)
        for path in (workdir, *workdir.iterdir()):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        as_user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    with open(workdir / "stderr.log", "wb") as stderr:  # a file, not a pipe nobody reads
        proc = subprocess.Popen([binary, str(workdir / "pgbouncer.ini")], stdin=subprocess.DEVNULL, stdout=stderr,
                                stderr=subprocess.STDOUT, cwd="/", **as_user)
    bouncer = Pgbouncer("127.0.0.1", port, user, pool_mode, workdir, proc, (upstream_host, upstream_port))
    deadline = time.monotonic() + 10
    while True:
        if proc.poll() is not None:
            out = (workdir / "stderr.log").read_text(errors="replace")
            log = bouncer.log()
            shutil.rmtree(workdir, ignore_errors=True)
            raise RuntimeError(f"pgbouncer exited with {proc.returncode}:\n{out}\n{log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return bouncer
        except OSError:
            if time.monotonic() > deadline:
                bouncer.stop()
                raise RuntimeError(f"pgbouncer did not listen on port {port}:\n{bouncer.log()}") from None
            time.sleep(0.02)
