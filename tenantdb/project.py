"""An app project: an application's own SQL beside the installed package.

Like a Django app beside Django, or a sqitch project that requires
another: a directory holding `tenantdb.toml`, with its own migrations/,
functions/, policies/ and seeds/. Every tenantdb command run in it (or
below it) reads the file, applies the package's changes and the app's in
one database, and keeps the two histories apart: the app's changes are
recorded as `<name>:<NNNN_change>`.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CONFIG = "tenantdb.toml"
NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
# A schema name tenantdb writes unquoted (app.schemas, the API schema).
IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")
PACKAGE = "tenantdb"  # the package's own history: its change ids carry no prefix
FOLDERS = ("migrations", "functions", "policies", "seeds")


class ProjectError(ValueError):
    """A tenantdb.toml that cannot be used, or init refused."""


@dataclass(frozen=True)
class AppProject:
    root: Path
    name: str
    schemas: tuple[str, ...] = ("app",)
    target: str | None = None
    api: str | None = None
    without: tuple[str, ...] = ()
    config: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG

    def describe(self) -> str:
        return f"app {self.name} in {self.root}"


def _strings(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProjectError(f"{where}: a list of strings, e.g. [\"app\"]")
    return tuple(value)


def load(root: Path) -> AppProject:
    """The project whose tenantdb.toml is in root (ProjectError names the problem)."""
    path = root / CONFIG
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProjectError(f"{path}: {exc}") from exc
    app = data.get("app", {})
    database = data.get("database", {})
    unknown = sorted(set(data) - {"app", "database"}) + sorted(f"app.{k}" for k in set(app) - {"name", "schemas"}) + \
        sorted(f"database.{k}" for k in set(database) - {"target", "api_schema", "without"})
    if unknown:
        raise ProjectError(f"{path}: unknown setting(s) {', '.join(unknown)} "
                           "(known: app.name, app.schemas, database.target, database.api_schema, database.without)")
    name = app.get("name")
    if not isinstance(name, str) or not NAME.match(name) or name == PACKAGE:
        raise ProjectError(f"{path}: app.name must be lower-case letters, digits and _ (not {PACKAGE!r}); "
                           f"got {name!r}")
    schemas = _strings(app.get("schemas", ["app"]), f"{path}: app.schemas")
    for schema in schemas:
        if not IDENTIFIER.fullmatch(schema):
            raise ProjectError(f"{path}: app.schemas: {schema!r} is not a plain lower-case schema name")
    target = database.get("target")
    api = database.get("api_schema")
    for key, value in (("target", target), ("api_schema", api)):
        if value is not None and not isinstance(value, str):
            raise ProjectError(f"{path}: database.{key} must be a string")
    from .render import TARGETS  # render imports this module

    if target is not None and target not in TARGETS:
        raise ProjectError(f"{path}: database.target must be {' or '.join(TARGETS)}; got {target!r}")
    if api is not None and not IDENTIFIER.fullmatch(api):
        raise ProjectError(f"{path}: database.api_schema must be a plain lower-case schema name; got {api!r}")
    without = _strings(database.get("without", []), f"{path}: database.without")
    return AppProject(root.resolve(), name, schemas, target, api, without, data)


def find(start: Path | None = None) -> AppProject | None:
    """The app project around start (default: the working directory):
    the nearest directory holding tenantdb.toml, or None."""
    here = (start or Path.cwd()).resolve()
    for path in (here, *here.parents):
        if (path / CONFIG).is_file():
            return load(path)
    return None


def default_name(directory: Path) -> str:
    """An app name from a directory name: lower case, _ for anything else."""
    name = re.sub(r"[^a-z0-9_]+", "_", directory.resolve().name.lower()).strip("_")
    if not name or not name[0].isalpha():
        name = "app_" + name if name else "app"
    return name[:40]
