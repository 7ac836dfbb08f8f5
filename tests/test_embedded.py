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
