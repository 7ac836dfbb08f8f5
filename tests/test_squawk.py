"""Squawk lints every migration, as rendered for the default target, so a
change that takes a long lock on a big table or loses data is seen before
release: a NOT NULL column without default, an index built without
CONCURRENTLY on an existing table, a column type change, a dropped column
or table, and the rest of squawk's default rules.

What is excused, and why, is in .squawk.toml at the repository root: rules
excluded for every migration (squawk reads those itself) and, per migration,
rules excluded for that file only ([tenantdb.exclude], applied here). A
migration whose first 30 lines carry `-- tenantdb: destructive` declares that
it drops data: its data-loss rules are excused without an entry.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tenantdb.render import DESTRUCTIVE_MARKER, Change, Renderer, Target

try:
    import tomllib
except ImportError:  # Python 3.10: pytest's own dependency
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / ".squawk.toml"

# What a migration declaring itself destructive may do without an entry in
# .squawk.toml: drop what holds data. Not excused: ban-truncate-cascade (it
# empties tables the author did not name: name them), ban-drop-database.
DATA_LOSS_RULES = frozenset({"ban-drop-column", "ban-drop-table", "ban-drop-schema", "ban-drop-sequence"})


@dataclass(frozen=True)
class Violation:
    file: str  # the change id, e.g. 0019_access_per_membership
    line: int  # 1-based
    rule: str
    message: str
    statement: str  # the flagged line

    def __str__(self) -> str:
        return f"{self.file}.sql:{self.line}: {self.rule}: {self.message}\n    {self.statement}"


# What squawk cannot see: DDL a DO block runs as dynamic SQL (`execute
# 'alter table ...'`, `execute format('create index ...')`). Reported as
# rule tenantdb-dynamic-ddl, excused like squawk's rules (per released
# migration, with a reason), so a loop over every table is seen.
DYNAMIC_DDL = "tenantdb-dynamic-ddl"
_EXECUTE = re.compile(r"\bexecute\s+(?:format\s*\(\s*)?E?'((?:[^']|'')*)'", re.I)
_DDL = re.compile(r"\b(alter\s+table|create\s+(?:unique\s+)?index|drop\s+(?:table|column|index|schema)|add\s+constraint"
                  r"|alter\s+column|truncate)\b", re.I)


def dynamic_ddl(name: str, sql: str) -> list[Violation]:
    return [Violation(name, sql.count("\n", 0, m.start()) + 1, DYNAMIC_DDL,
                      "DDL run by EXECUTE: squawk cannot lint it; say in .squawk.toml what it locks and scans",
                      m.group(0).splitlines()[0].strip())
            for m in _EXECUTE.finditer(sql) if _DDL.search(m.group(1))]


def squawk_executable() -> str:
    """The squawk of this environment (the [test] extra's squawk-cli): an
    error, not a skip, when it is missing."""
    beside = Path(sys.executable).with_name("squawk")
    found = str(beside) if beside.exists() else shutil.which("squawk")
    assert found, "squawk not found: pip install squawk-cli (it is in tenantdb's [test] extra)"
    return found


def config() -> dict:
    with CONFIG.open("rb") as f:
        return tomllib.load(f)


def per_file_exclusions() -> dict[str, dict[str, str]]:
    return config().get("tenantdb", {}).get("exclude", {})


def is_destructive(change_id: str, sql: str) -> bool:
    """The marker as tenantdb reads it (Change.destructive): migrate shows
    and guards what such a change drops."""
    return Change(change_id, f"migrations/{change_id}.sql", sql, "").destructive


def lint(files: dict[str, str], folder: Path) -> list[Violation]:
    """Squawk's findings on the given {change id: SQL} (written to folder),
    with .squawk.toml's own settings and global exclusions."""
    for name, sql in files.items():
        (folder / f"{name}.sql").write_text(sql)
    proc = subprocess.run(
        [squawk_executable(), "--config", str(CONFIG), "--reporter", "json", *(f"{name}.sql" for name in sorted(files))],
        cwd=folder, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode in (0, 1), f"squawk failed (exit {proc.returncode}): {proc.stderr or proc.stdout}"
    found = json.loads(proc.stdout or "[]")
    assert bool(found) == (proc.returncode == 1), proc.stdout
    violations = []
    for v in found:
        name = Path(v["file"]).stem
        lines = files[name].splitlines()
        statement = lines[v["line"]].strip() if v["line"] < len(lines) else ""
        violations.append(Violation(name, v["line"] + 1, v["rule_name"], v["message"], statement))
    for name, sql in files.items():
        violations += dynamic_ddl(name, sql)
    return violations


def unexcused(violations: list[Violation], files: dict[str, str]) -> list[Violation]:
    """The violations neither .squawk.toml's per-file exclusions nor a
    destructive marker excuse."""
    exclusions = per_file_exclusions()
    return [
        v for v in violations
        if v.rule not in exclusions.get(v.file, {})
        and not (v.rule in DATA_LOSS_RULES and is_destructive(v.file, files[v.file]))
    ]


@pytest.fixture(scope="module")
def migrations() -> dict[str, str]:
    """Every migration, forward, rendered for the default target."""
    return {c.id: c.sql for c in Renderer(Target()).changes()}


@pytest.fixture(scope="module")
def migration_violations(migrations: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> list[Violation]:
    return lint(migrations, tmp_path_factory.mktemp("squawk"))


def test_migrations_pass_squawk(migrations: dict[str, str], migration_violations: list[Violation]) -> None:
    left = unexcused(migration_violations, migrations)
    if left:
        pytest.fail(
            f"squawk flags {len(left)} statement(s) of the migrations:\n\n" + "\n".join(map(str, left)) + "\n\n"
            "Write the change so that it takes no long lock on a table that may be big and drops no data: "
            "a constraint NOT VALID, validated by a later change; a column with a default, not a required one; "
            "a new column, not a type change. A change runs in one transaction, so an index on a big table "
            "cannot be built CONCURRENTLY there: build it beforehand (`create index concurrently`) and say so "
            "where you excuse the change's `create index if not exists`. A change that drops data on purpose carries "
            f"`{DESTRUCTIVE_MARKER}` in its first 30 lines. Otherwise excuse the rule for this change in "
            '.squawk.toml, [tenantdb.exclude."NNNN_name"], with the reason.',
            pytrace=False,
        )


def test_every_exclusion_is_justified_and_used(migrations: dict[str, str], migration_violations: list[Violation]) -> None:
    """An exclusion names a migration and a rule squawk raises there, with
    its reason; one that no longer matches anything goes."""
    raised = {(v.file, v.rule) for v in migration_violations}
    released = json.loads((Path(__file__).parent / "fixtures" / "released_checksums.json").read_text())["postgres"]
    problems = []
    for change_id, rules in per_file_exclusions().items():
        if change_id not in migrations:
            problems.append(f"{change_id}: no such migration")
            continue
        if change_id not in released:
            # an exclusion covers a file's statements as they are: only a released (checksummed, frozen)
            # migration may have one, or a statement added later would hide behind it
            problems.append(f"{change_id}: not released (tests/fixtures/released_checksums.json); write it so that "
                            "squawk passes instead of excusing it")
            continue
        for rule, reason in rules.items():
            if not (isinstance(reason, str) and reason.strip()):
                problems.append(f"{change_id} {rule}: no reason given")
            if (change_id, rule) not in raised:
                problems.append(f"{change_id} {rule}: squawk raises nothing of the kind there (stale exclusion)")
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def test_exclusions_live_in_squawk_toml_only(migrations: dict[str, str]) -> None:
    """No migration silences squawk inline, and squawk skips no file."""
    assert "excluded_paths" not in config(), "excluded_paths skips whole files: exclude rules per migration instead"
    inline = [cid for cid, sql in migrations.items() if re.search(r"squawk-ignore", sql, re.I)]
    assert not inline, f"inline squawk-ignore in {inline}: excuse the rule in .squawk.toml with its reason"


BAD = """\
-- A change a reviewer should stop.
alter table app.projects add column x int not null;
create index on app.projects (title);
alter table app.projects drop column description;
do $$ begin execute format('alter table %I.%I add constraint c check (true)', 'app', 'projects'); end $$;
"""


def test_squawk_flags_a_bad_migration(tmp_path: Path) -> None:
    """The lint can fail: a required column added to a table that has rows,
    an index built without CONCURRENTLY, a dropped column and DDL run by
    EXECUTE are flagged; the drop only is excused once the change declares
    itself destructive."""
    destructive = f"{DESTRUCTIVE_MARKER} (drops app.projects.description)\n" + BAD
    files = {"9998_bad": BAD, "9999_bad_destructive": destructive}
    left = unexcused(lint(files, tmp_path), files)
    flagged = {name: {(v.line, v.rule) for v in left if v.file == name} for name in files}
    assert {(2, "adding-required-field"), (3, "require-concurrent-index-creation"), (4, "ban-drop-column"),
            (5, DYNAMIC_DDL)} <= flagged["9998_bad"], left
    assert {(3, "adding-required-field"), (4, "require-concurrent-index-creation")} <= flagged["9999_bad_destructive"], left
    assert not {rule for _, rule in flagged["9999_bad_destructive"]} & DATA_LOSS_RULES, left
    assert is_destructive("9999_bad_destructive", destructive) and not is_destructive("9998_bad", BAD)
    late = {"9997_bad_marked_late": "\n" * 30 + destructive}
    assert {v.rule for v in unexcused(lint(late, tmp_path), late)} >= {"ban-drop-column"}, \
        "the marker counts in the first 30 lines only"
