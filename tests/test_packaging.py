"""The wheel carries its SQL: installed into a fresh virtual environment and
run from outside the repository, `tenantdb` migrates a database."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import psycopg

from conftest import ROOT


def test_wheel_installed_outside_the_repo_migrates(empty_db: str, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)], check=True, timeout=600)
    wheels = list(dist.glob("tenantdb-*.whl"))
    assert len(wheels) == 1
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheels[0])], check=True, timeout=600)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    tool = env_dir / "bin" / "tenantdb"
    proc = subprocess.run([str(tool), "--dsn", empty_db, "migrate"], capture_output=True, text=True, cwd=elsewhere, timeout=300)
    assert proc.returncode == 0, proc.stderr
    expected = len(list((ROOT / "migrations").glob("[0-9]*[!k].sql")))
    assert len([l for l in proc.stdout.splitlines() if l.startswith("applied ")]) == expected
    assert proc.stdout.splitlines()[0].endswith("(the installed package)"), "outside a checkout it says it uses the package's SQL"
    located = subprocess.run([str(py), "-c", "import tenantdb.paths as p; print(p.sql_root())"],
                             capture_output=True, text=True, cwd=elsewhere, check=True).stdout.strip()
    assert "site-packages" in located and not located.startswith(str(ROOT))
    with psycopg.connect(empty_db) as conn:
        assert conn.execute("select count(*) from tenantdb.changes").fetchone()[0] == expected


def test_editable_install_runs_and_sees_a_new_migration(empty_db: str, tmp_path: Path) -> None:
    """`pip install -e .` gives a working `tenantdb` (it once failed with
    ModuleNotFoundError: tenantdb.cli); run in the checkout it uses the
    checkout's SQL, so a migration added there is pending."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-e", str(ROOT)], check=True, timeout=600)
    tool = env_dir / "bin" / "tenantdb"
    version = subprocess.run([str(tool), "--version"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("tenantdb, version"), version.stderr
    status = subprocess.run([str(tool), "status", "--dsn", empty_db], capture_output=True, text=True, cwd=ROOT / "migrations", timeout=60)
    assert status.returncode == 0, status.stderr
    assert status.stdout.splitlines()[1] == f"SQL from {ROOT} (the project checkout)"
