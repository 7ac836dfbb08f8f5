"""Where the package's SQL lives: inside the wheel, or in the source tree."""

from __future__ import annotations

from pathlib import Path

SQL_DIRS = ("sql", "migrations", "functions", "policies", "seeds")


def sql_root() -> Path:
    """The directory holding sql/, migrations/, functions/, policies/, seeds/."""
    here = Path(__file__).resolve().parent
    bundled = here / "_sql"
    if (bundled / "migrations").is_dir():
        return bundled
    return here.parent
