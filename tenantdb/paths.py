"""Where the SQL comes from: the project the command runs in, or the package.

Like Flyway's `locations` or sqitch's `top_dir`: a command run inside a
project checkout (a directory holding migrations/ and sql/macros.sql, or
one of its subdirectories) uses that project's SQL, so a migration added or
edited there is what `status`, `migrate` and `verify` see. Elsewhere the SQL
installed with the package is used. `--sql-dir` / TENANTDB_SQL_DIR name one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SQL_DIRS = ("sql", "migrations", "functions", "policies", "seeds")


def _is_project(path: Path) -> bool:
    return (path / "migrations").is_dir() and (path / "sql" / "macros.sql").is_file()


def package_root() -> Path:
    """The SQL installed with the package (inside the wheel, or the source tree)."""
    here = Path(__file__).resolve().parent
    bundled = here / "_sql"
    if (bundled / "migrations").is_dir():
        return bundled
    return here.parent


@dataclass(frozen=True)
class SqlSource:
    root: Path
    kind: str  # "given" (--sql-dir), "project" (found from the working directory), "package"

    def describe(self) -> str:
        where = {"given": "--sql-dir", "project": "the project checkout", "package": "the installed package"}[self.kind]
        return f"SQL from {self.root} ({where})"


def find_sql(given: str | os.PathLike | None = None, cwd: Path | None = None) -> SqlSource:
    """The SQL to use: given (or TENANTDB_SQL_DIR), else the project around
    the working directory, else the package's. A given directory that is
    not a project is an error (ValueError)."""
    given = given or os.environ.get("TENANTDB_SQL_DIR") or None
    if given:
        root = Path(given).resolve()
        if not _is_project(root):
            raise ValueError(f"{root}: not a tenantdb SQL directory (it needs migrations/ and sql/macros.sql)")
        return SqlSource(root, "given")
    start = (cwd or Path.cwd()).resolve()
    for path in (start, *start.parents):
        if _is_project(path):
            return SqlSource(path, "project")
    return SqlSource(package_root(), "package")


def sql_root() -> Path:
    """The directory holding sql/, migrations/, functions/, policies/, seeds/
    for this invocation (see find_sql)."""
    return find_sql().root
