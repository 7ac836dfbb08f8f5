"""The app recipe of docs/getting-started.md ("Your app's own tables", then
"Upgrading tenantdb under your app"), run as written: from a wheel of this
checkout installed in a virtual environment of its own, in an empty
directory outside the checkout, against an empty database. Every `sh`
block's commands run in order, every SQL and JSON block goes into the file
its lead line names ("Add to `path`" below the header `tenantdb new`
wrote, "Write `path`" in its place), and the psql session's outcomes are
checked: the member's documents, the other organization seeing none, the
gate refusing past the free plan's limit. Then `pip install -U tenantdb`
installs a second build of the package, the checkout's source with one
more package change, and the upgrade commands apply it under the app.

Dependencies are not downloaded: the wheels are installed with --no-deps,
and a .pth file makes the test interpreter's site-packages (without its
own tenantdb) the new environment's last entry on sys.path."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import venv
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from conftest import ROOT, pg_tool
from tenantdb import __version__
from tenantdb.paths import SQL_DIRS
from tenantdb.render import Renderer, Target

DOC = ROOT / "docs" / "getting-started.md"
FIRST, UPGRADE = "## Your app's own tables", "## Upgrading tenantdb under your app"
FENCE = re.compile(r"^```(\w*)\s*$")
LEAD = re.compile(r"^(Add to|Write) `([^`]+)`")
PIP = re.compile(r"^pip install (-U )?tenantdb$")

PACKAGE_IDS = [c.id for c in Renderer(Target()).changes()]
NEXT_ID = f"{int(PACKAGE_IDS[-1][:4]) + 1:04d}_recipe_upgrade"
NEXT_VERSION = f"{__version__}.post1"


@dataclass(frozen=True)
class Step:
    kind: str  # "run" (a command of an sh block), "add" (below a file's header) or "write" (a whole file)
    target: str  # the command, or the file's path relative to where the commands run
    text: str = ""


# What the recipe must hold, in order: a step the doc loses (or gains) fails here first.
EXPECTED = [
    ("run", "pip install tenantdb"), ("run", "tenantdb init myapp"), ("run", "cd myapp"),
    ("run", "tenantdb new migration documents"), ("run", "tenantdb new policy documents"),
    ("run", "tenantdb new function documents"),
    ("add", "migrations/0001_documents.sql"), ("add", "migrations/0001_documents.rollback.sql"),
    ("add", "policies/0001_documents.sql"), ("add", "functions/0001_documents.sql"),
    ("write", "seeds/permissions.json"), ("write", "seeds/catalog.json"),
    ("run", "tenantdb migrate"), ("run", "tenantdb seed"), ("run", "tenantdb verify"),
    ("write", "try-documents.sql"), ("run", 'psql "$DATABASE_URL" -f try-documents.sql'),
    ("run", "pip install -U tenantdb"), ("run", "tenantdb status"), ("run", "tenantdb migrate"),
    ("run", "tenantdb seed"), ("run", "tenantdb verify"),
]


def recipe(text: str) -> list[Step]:
    """The steps of the two sections, from their fenced blocks: `sh` blocks
    are commands (one a line), `text` blocks are shown output, and any other
    block is a file's content, named by the first line of the paragraph
    before it."""
    lines = text.splitlines()
    start = lines.index(FIRST)
    end = next(i for i in range(start + 1, len(lines))
               if lines[i].startswith("## ") and lines[i] != UPGRADE)
    steps: list[Step] = []
    lead, block, lang = "", None, ""
    for number, line in enumerate(lines[start:end], start + 1):
        fence = FENCE.match(line)
        if block is None and fence:
            block, lang = [], fence.group(1)
            continue
        if block is not None and line == "```":
            body = "\n".join(block) + "\n"
            if lang == "sh":
                steps += [Step("run", cmd) for cmd in block if cmd.strip() and not cmd.startswith("#")]
            elif lang != "text":
                named = LEAD.match(lead)
                assert named, f"{DOC.name}:{number}: a {lang} block without an 'Add to `file`' or 'Write `file`' line before it"
                steps.append(Step("add" if named.group(1) == "Add to" else "write", named.group(2), body))
            block, lead = None, ""
            continue
        if block is not None:
            block.append(line)
        elif line.strip() and not lines[number - 2].strip():
            lead = line  # a paragraph's first line
    assert block is None, f"{DOC.name}: a fenced block of the recipe is not closed"
    return steps


def test_the_recipe_is_read_whole_and_refuses_a_block_it_cannot_place() -> None:
    """The parser's own control: the doc's steps, in order, and a block
    without its file line is an error, not a silently skipped step."""
    assert [(s.kind, s.target) for s in recipe(DOC.read_text())] == EXPECTED
    broken = f"{FIRST}\n\nSome prose.\n\n```sql\nselect 1;\n```\n\n## Next\n"
    with pytest.raises(AssertionError, match="a sql block without an 'Add to `file`'"):
        recipe(broken)


# -- two builds of the package ------------------------------------------------


def build_wheel(source: Path, out: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
                   check=True, timeout=300, capture_output=True)
    wheels = list(out.glob("tenantdb-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def next_release(dest: Path) -> Path:
    """The checkout's source with one more package change (a schema and a
    table nothing else uses, with its rollback) and a higher version."""
    for name in SQL_DIRS + ("tenantdb",):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "README.md", dest / "README.md")
    for relpath, old, new in (("pyproject.toml", f'version = "{__version__}"', f'version = "{NEXT_VERSION}"'),
                              ("tenantdb/__init__.py", f'__version__ = "{__version__}"', f'__version__ = "{NEXT_VERSION}"')):
        text = (ROOT / relpath).read_text()
        assert text.count(old) == 1, f"{relpath}: no single {old!r} to bump"
        (dest / relpath).write_text(text.replace(old, new))
    (dest / "migrations" / f"{NEXT_ID}.sql").write_text(
        f"-- {NEXT_ID}: the next release's change (tests/test_app_recipe.py's second build).\n"
        "create schema recipe_upgrade;\n"
        "comment on schema recipe_upgrade is 'Made by the next release of the test''s package build.';\n"
        "create table recipe_upgrade.notes (id integer primary key, note text not null);\n"
        "comment on table recipe_upgrade.notes is 'A table of the next release, read by nobody.';\n")
    (dest / "migrations" / f"{NEXT_ID}.rollback.sql").write_text("drop schema recipe_upgrade cascade;\n")
    return dest


@dataclass(frozen=True)
class Builds:
    today: Path
    upgrade: Path
    dependencies: Path  # the test interpreter's site-packages without tenantdb, as symlinks


@pytest.fixture(scope="session")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Builds:
    base = tmp_path_factory.mktemp("recipe-builds")
    today = build_wheel(ROOT, base / "today")
    upgrade = build_wheel(next_release(base / "next-source"), base / "next")
    deps = base / "dependencies"
    deps.mkdir()
    skip = re.compile(r"^(tenantdb|_?_?editable|pip|setuptools|pkg_resources|_distutils_hack|__pycache__)|\.pth$")
    for site in dict.fromkeys(Path(sysconfig.get_paths()[key]) for key in ("purelib", "platlib")):
        for entry in site.iterdir():
            if not skip.search(entry.name) and not (deps / entry.name).exists():
                (deps / entry.name).symlink_to(entry)
    return Builds(today, upgrade, deps)


@pytest.fixture
def app_env(builds: Builds, tmp_path: Path, empty_db: str) -> tuple[Path, dict[str, str]]:
    """(an empty directory outside the checkout, the environment of an
    activated virtual environment there: no tenantdb yet, DATABASE_URL
    the empty database, psql on PATH)."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(subprocess.run([str(env_dir / "bin" / "python"), "-c", purelib],
                               capture_output=True, text=True, check=True).stdout.strip())
    assert site.is_dir() and env_dir in site.parents, site
    (site / "zz_dependencies.pth").write_text(f"{builds.dependencies}\n")
    work = tmp_path / "work"
    work.mkdir()
    assert ROOT not in work.resolve().parents
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TENANTDB_", "PG", "PYTHON", "VIRTUAL_ENV", "DATABASE_URL"))}
    env.update(VIRTUAL_ENV=str(env_dir), DATABASE_URL=empty_db,
               PATH=os.pathsep.join([str(env_dir / "bin"), str(Path(pg_tool("psql")).parent), env.get("PATH", "")]))
    return work, env


def installed(env: dict[str, str], cwd: Path) -> tuple[str, str]:
    """(`tenantdb --version`, where `import tenantdb` finds it) in env."""
    version = subprocess.run(["tenantdb", "--version"], capture_output=True, text=True, cwd=cwd, env=env, timeout=60)
    where = subprocess.run(["python", "-c", "import tenantdb; print(tenantdb.__file__)"], capture_output=True,
                           text=True, cwd=cwd, env=env, timeout=60)
    assert version.returncode == 0 and where.returncode == 0, version.stderr + where.stderr
    return version.stdout.strip(), where.stdout.strip()


def run_recipe(steps: list[Step], work: Path, env: dict[str, str], builds: Builds) -> dict[str, list[str]]:
    """Each step in order; a command that fails fails the test. Returns
    each command's outputs (stdout + stderr), in the order they ran."""
    cwd, outputs = work, {}
    for step in steps:
        if step.kind in ("add", "write"):
            path = cwd / step.target
            if step.kind == "add":
                assert path.is_file(), f"Add to `{step.target}`: tenantdb new did not write it"
                path.write_text(path.read_text() + step.text)
            else:
                path.write_text(step.text)
            continue
        command = step.target
        if command.startswith("cd "):
            cwd = cwd / command[3:]
            assert cwd.is_dir(), command
            continue
        pip = PIP.match(command)
        if command.startswith("pip "):
            assert pip, f"{command!r}: the test knows `pip install tenantdb` and `pip install -U tenantdb` only"
            wheel = builds.upgrade if pip.group(1) else builds.today
            command = f"pip install -q {pip.group(1) or ''}--no-deps {wheel}"
        started = time.perf_counter()
        proc = subprocess.run(["bash", "-c", command], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)
        assert proc.returncode == 0, f"`{step.target}` exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
        outputs.setdefault(step.target, []).append(proc.stdout + proc.stderr)
        print(f"{time.perf_counter() - started:6.2f}s  {step.target}")
        if pip:  # the wheel's tenantdb, and never the checkout's
            version, where = installed(env, work)
            assert version == f"tenantdb, version {NEXT_VERSION if pip.group(1) else __version__}"
            assert where.startswith(str(env["VIRTUAL_ENV"])) and not where.startswith(str(ROOT)), where
    return outputs


def applied_lines(output: str) -> list[str]:
    return [line.split()[1] for line in output.splitlines() if line.startswith("applied ")]


def test_the_recipe_runs_from_an_installed_wheel_and_upgrades_under_the_app(
        builds: Builds, app_env: tuple[Path, dict[str, str]], empty_db: str) -> None:
    work, env = app_env
    steps = recipe(DOC.read_text())
    assert [(s.kind, s.target) for s in steps] == EXPECTED
    outputs = run_recipe(steps, work, env, builds)
    root = (work / "myapp").resolve()

    # migrate applied the package's changes, then the app's; verify said ok, twice
    first, second = outputs["tenantdb migrate"]
    where = first.splitlines()[0]  # the package's SQL is the wheel's, in the virtual environment
    assert where.startswith(f"SQL from {env['VIRTUAL_ENV']}/"), where
    assert where.endswith(f"(the installed package); app myapp in {root}"), where
    assert applied_lines(first) == PACKAGE_IDS + ["myapp:0001_documents"]
    assert [out.strip().splitlines()[-1] for out in outputs["tenantdb verify"]] == ["ok", "ok"]
    assert f"-- tenantdb: requires {PACKAGE_IDS[-1]}\n" in (root / "migrations/0001_documents.sql").read_text()

    # the psql session: the gate refused the third document at commit (54000), Bob saw none and could add none
    session = outputs['psql "$DATABASE_URL" -f try-documents.sql'][0]
    assert re.search(r"ERROR:  limit max_documents reached: plan free allows 2 documents, organization \S+ has 2",
                     session), session
    assert "refused with 54000" in session.splitlines()
    assert re.search(r"bob_sees\s*\n-+\n\s+0\n", session), session
    assert 'ERROR:  new row violates row-level security policy for table "documents"' in session
    assert re.search(r"title\s*\n-+\n Budget\s*\n Roadmap\s*\n", session), session

    # the upgrade: status showed the new package change pending beside the app's history; migrate applied it alone
    status = outputs["tenantdb status"][0]
    assert f"tenantdb {NEXT_VERSION} (the package): {len(PACKAGE_IDS)} applied, 1 pending" in status
    assert f"app myapp ({root}): 1 applied, 0 pending" in status and f"pending  {NEXT_ID}" in status
    assert applied_lines(second) == [NEXT_ID]
    after = subprocess.run(["tenantdb", "status"], capture_output=True, text=True, cwd=root, env=env, timeout=60)
    assert after.returncode == 0, after.stderr
    assert f"tenantdb {NEXT_VERSION} (the package): {len(PACKAGE_IDS) + 1} applied, 0 pending" in after.stdout
    assert f"app myapp ({root}): 1 applied, 0 pending" in after.stdout

    with psycopg.connect(empty_db) as conn:
        order = [r[0] for r in conn.execute("select change_id from tenantdb.changes order by applied_at, change_id")]
        assert order == PACKAGE_IDS + ["myapp:0001_documents", NEXT_ID]  # the package's new change after the app's
        assert conn.execute("select to_regclass('recipe_upgrade.notes') is not null").fetchone()[0]
        assert sorted(r[0] for r in conn.execute("select title from app.documents")) == ["Budget", "Roadmap"]
        assert conn.execute("select count(*) from iam.permissions where key like 'document.%'").fetchone()[0] == 3
        assert conn.execute("select limit_value from catalog.plan_features "
                            "where plan_key = 'free' and feature_key = 'max_documents'").fetchone()[0] == 2
