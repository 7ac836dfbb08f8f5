"""Every tests/sql/*.sql and tests/seeds/*.sql pgTAP file is a test item,
run by psql in a fresh clone of the migrated template; it passes when its
plan is met exactly and every assertion is ok. tests/seeds/ holds the design
documents' own SQL, run as written (each file lists its substitutions)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from conftest import pg_tool

SQL_TESTS = sorted((Path(__file__).parent / "sql").glob("*.sql")) + sorted((Path(__file__).parent / "seeds").glob("*.sql"))
PLAN = re.compile(r"^1\.\.(\d+)$")
RESULT = re.compile(r"^(not ok|ok) (\d+)")


def run_pgtap(dsn: str, path: Path) -> tuple[int | None, list[tuple[bool, int, str]], str]:
    proc = subprocess.run(
        [pg_tool("psql"), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-f", str(path)],
        capture_output=True, text=True, cwd=path.parent, timeout=300,
    )
    planned = None
    results = []
    for line in proc.stdout.splitlines():
        if m := PLAN.match(line.strip()):
            planned = int(m.group(1))
        elif m := RESULT.match(line.strip()):
            results.append((m.group(1) == "ok", int(m.group(2)), line))
    return planned, results, proc.stdout + proc.stderr + f"\n(psql exit {proc.returncode})"


@pytest.mark.parametrize("path", SQL_TESTS, ids=[f"{p.parent.name}/{p.stem}" if p.parent.name == "seeds" else p.stem for p in SQL_TESTS])
def test_pgtap_file(dsn: str, path: Path) -> None:
    planned, results, output = run_pgtap(dsn, path)
    assert planned is not None, f"{path.name}: no plan\n{output}"
    failed = [line for ok, _, line in results if not ok]
    assert not failed, f"{path.name}: failed assertions:\n" + "\n".join(failed) + "\n" + output
    assert len(results) == planned, f"{path.name}: planned {planned}, ran {len(results)}\n{output}"
    assert "(psql exit 0)" in output, output


def test_pgtap_files_exist() -> None:
    assert len(SQL_TESTS) >= 3
