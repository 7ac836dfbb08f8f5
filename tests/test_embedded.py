"""The newcomer's path: `tenantdb up` on the embedded PostgreSQL 18, then
verify, a second `up` that reuses the server, and `down`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg

from conftest import ROOT

CLI = [sys.executable, str(ROOT / "cli.py")]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + list(args), capture_output=True, text=True, cwd=cwd, timeout=300)


def test_up_migrates_seeds_and_verifies_on_embedded_postgres_18(tmp_path: Path) -> None:
    data = tmp_path / "pg"
    first = run("up", "--data-dir", str(data), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    dsn = first.stdout.splitlines()[-1]
    try:
        with psycopg.connect(dsn) as conn:
            assert conn.execute("select current_setting('server_version_num')::int / 10000").fetchone()[0] == 18
            assert conn.execute("select count(*) from iam.roles").fetchone()[0] == 8
        verified = run("--dsn", dsn, "verify", cwd=tmp_path)
        assert verified.returncode == 0, verified.stdout
        again = run("up", "--data-dir", str(data), cwd=tmp_path)
        assert again.returncode == 0 and again.stdout.splitlines()[-1] == dsn
        assert "nothing to apply" in again.stdout
    finally:
        down = run("down", "--data-dir", str(data), cwd=tmp_path)
    assert down.returncode == 0 and down.stdout.strip() == "stopped"
    assert not (data / "postmaster.pid").exists()


def test_after_up_the_other_commands_find_the_server_and_tcp_works(tmp_path: Path) -> None:
    """`up` in a directory records its server in ./.tenantdb; `status` and
    `verify` run there without a DSN, and the loopback TCP address answers."""
    import json
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}
    first = subprocess.run(CLI + ["up"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert first.returncode == 0, first.stderr
    try:
        record = json.loads((tmp_path / ".tenantdb" / "tenantdb-server.json").read_text())
        assert record["dsn"] == first.stdout.splitlines()[-1]
        assert record["tcp_dsn"] in first.stderr
        with psycopg.connect(record["tcp_dsn"]) as conn:
            assert conn.execute("select inet_server_addr()::text").fetchone()[0] == "127.0.0.1/32"
            assert conn.execute("select count(*) from tenantdb.changes").fetchone()[0] > 0
        status = subprocess.run(CLI + ["status"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
        assert status.returncode == 0 and "pending" not in status.stdout and "applied  0001_foundation" in status.stdout
        verified = subprocess.run(CLI + ["verify"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
        assert verified.returncode == 0 and verified.stdout.strip() == "ok"
    finally:
        subprocess.run(CLI + ["down"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    gone = subprocess.run(CLI + ["status"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert gone.returncode == 3 and "is stopped: `tenantdb up` starts it again" in gone.stderr, gone.stderr
