"""A streaming hot standby of the harness's PostgreSQL, for the read-path
tests (tests/test_standby.py): what a read replica (Supabase's, or any
`pg_basebackup -R` standby behind PostgREST's read routing) runs.

The standby is a `pg_basebackup -R` copy of the primary's data directory
(streamed WAL, a fast checkpoint, no fsync: a test server), started with
the binaries of the primary's major version (the harness's PG_BINDIR,
i.e. TENANTDB_PG_BINDIR) on a port of its own with hot_standby on. The
primary needs nothing changed: initdb's pg_hba.conf trusts replication
connections from localhost and the local socket, and wal_level = replica
and max_wal_senders = 10 are the defaults.

pg_basebackup and the server refuse to run as root: as root they run as
the harness's unprivileged OS user (TENANTDB_PG_USER, default postgres,
the user tests/bin/pg_ctl-as-postgres runs the primary as), in a
directory that user owns.
"""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo


def _os_user() -> str | None:
    """The OS user to run the server tools as: None when we are not root."""
    return os.environ.get("TENANTDB_PG_USER", "postgres") if os.geteuid() == 0 else None


def _run(argv: list[str], password: str | None = None, timeout: float = 120) -> None:
    user = _os_user()
    if user:
        argv = ["runuser", "-u", user, "--", *argv]
    env = {**os.environ, "PGPASSWORD": password} if password else None
    proc = subprocess.run(argv, capture_output=True, text=True, cwd="/", env=env, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {proc.returncode}:\n{proc.stdout}{proc.stderr}")


def _give(path: Path) -> None:
    """Make path (a directory) the server user's, and its parents traversable."""
    path.mkdir(parents=True, exist_ok=True)
    user = _os_user()
    if not user:
        return
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    for parent in path.parents:
        if parent == Path("/"):
            break
        try:
            os.chmod(parent, os.stat(parent).st_mode | 0o001)
        except OSError:
            pass


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class Standby:
    """A running hot standby: conninfo(dbname) reaches a database of the
    primary's, as replayed here; wait_for_replay() waits until everything
    the primary has written so far is replayed."""

    host: str
    port: int
    user: str
    datadir: Path
    logfile: Path
    bindir: Path
    primary: str  # conninfo of the primary's maintenance database
    password: str | None = None
    slot: str | None = None  # the primary's physical replication slot for it

    def conninfo(self, dbname: str, **extra: object) -> str:
        return make_conninfo(host=self.host, port=self.port, user=self.user, dbname=dbname,
                             **({"password": self.password} if self.password else {}), **extra)

    def reroute(self, dsn: str) -> str:
        """The standby's conninfo of a primary database's conninfo (e.g. the `dsn` fixture)."""
        return self.conninfo(conninfo_to_dict(dsn)["dbname"])

    def primary_lsn(self) -> str:
        with psycopg.connect(self.primary, autocommit=True) as conn:
            return conn.execute("select pg_catalog.pg_current_wal_lsn()::text").fetchone()[0]

    def wait_for_replay(self, lsn: str | None = None, timeout: float = 30.0) -> str:
        """Wait until the standby has replayed the primary's WAL up to lsn
        (default: the primary's current WAL position); returns that LSN."""
        target = lsn or self.primary_lsn()
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.conninfo("postgres"), autocommit=True) as conn:
            while True:
                replayed, caught_up = conn.execute(
                    "select pg_catalog.pg_last_wal_replay_lsn()::text, pg_catalog.pg_last_wal_replay_lsn() >= %s::pg_lsn",
                    (target,)).fetchone()
                if caught_up:
                    return target
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the standby replayed up to {replayed}, not {target}, in {timeout} s:\n{self.log_tail()}")
                time.sleep(0.02)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Stop the standby and drop its slot on the primary."""
        if (self.datadir / "postmaster.pid").exists():
            _run([str(self.bindir / "pg_ctl"), "stop", "-D", str(self.datadir), "-m", "immediate", "-w"])
        if not self.slot:
            return
        deadline = time.monotonic() + 10
        with psycopg.connect(self.primary, autocommit=True) as conn:
            # The primary's walsender lets go of the slot once it sees the standby gone.
            while conn.execute("select active from pg_catalog.pg_replication_slots where slot_name = %s", (self.slot,)).fetchone() == (True,):
                if time.monotonic() > deadline:
                    return
                time.sleep(0.02)
            conn.execute("select pg_catalog.pg_drop_replication_slot(slot_name) from pg_catalog.pg_replication_slots "
                         "where slot_name = %s", (self.slot,))


def start_standby(host: str, port: int, user: str, bindir: Path, workdir: Path, password: str | None = None) -> Standby:
    """pg_basebackup -R of the server at host:port into workdir/data, and a
    hot standby started on it (on a free port, its socket in workdir)."""
    _give(workdir)
    datadir, logfile = workdir / "data", workdir / "standby.log"
    standby_port = free_port(host)
    # -R writes the connection (with the password, if any) and the slot into
    # postgresql.auto.conf; the physical slot (-C -S) keeps the WAL the
    # standby has not replayed yet, however much the rest of the session writes.
    slot = f"tenantdb_standby_{standby_port}"
    _run([str(bindir / "pg_basebackup"), "-h", host, "-p", str(port), "-U", user, "-D", str(datadir),
          "-R", "-X", "stream", "-C", "-S", slot, "-c", "fast", "--no-sync", "--no-manifest"], password=password)
    options = " ".join([
        f"-p {standby_port}", f"-c listen_addresses={host}", f"-c unix_socket_directories='{workdir}'",
        "-c hot_standby=on",
        # Vacuum on the primary never cancels a test's query here.
        "-c hot_standby_feedback=on",
        "-c logging_collector=off", "-c log_destination=stderr",
    ])
    server = Standby(host=host, port=standby_port, user=user, datadir=datadir, logfile=logfile, bindir=bindir,
                     primary=make_conninfo(host=host, port=port, user=user, dbname="postgres",
                                           **({"password": password} if password else {})),
                     password=password, slot=slot)
    try:
        _run([str(bindir / "pg_ctl"), "start", "-D", str(datadir), "-l", str(logfile), "-o", options, "-w", "-t", "60"])
        server.wait_for_replay()
    except Exception as exc:
        tail = server.log_tail()
        server.stop()
        raise RuntimeError(f"the standby did not start: {exc}\n{tail}") from exc
    return server
