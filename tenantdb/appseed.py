"""An app project's seeds merged with the package's.

The app owns its permissions (seeds/permissions.json: each with the tenant
roles that hold it) and its part of the plan catalog (seeds/catalog.json:
meters, features, plans of its own, and features added to the package's
plans). `tenantdb seed` loads the package's catalog and the app's as one
document, so private.load_catalog sees the whole catalog it keeps. A key
the app declares that is already the package's is refused, by name:
the app cannot redefine what the package seeds.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import psycopg

from .errors import StatementError, TenantdbError
from .project import AppProject
from .render import sqlquote

PERMISSION_KEY = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


class SeedConflict(TenantdbError):
    """An app seed that collides with the package's, or is malformed (exit 1, nothing seeded)."""


def _read(path: Path, empty: dict) -> dict:
    if not path.exists():
        return copy.deepcopy(empty)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SeedConflict(f"{path}: not readable JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise SeedConflict(f"{path}: a JSON object, e.g. {json.dumps(empty)}")
    return document


def catalog_path(app: AppProject) -> Path:
    return app.root / "seeds" / "catalog.json"


def permissions_path(app: AppProject) -> Path:
    return app.root / "seeds" / "permissions.json"


def _keys(items: list, section: str, source: str) -> list[str]:
    keys = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise SeedConflict(f"{source}: {section}[{i}] needs a \"key\" (a string)")
        keys.append(item["key"])
    return keys


def merged_catalog(package: dict, package_source: str, app: AppProject) -> dict:
    """The package's catalog with the app's: the app's meters, features and
    plans appended; an app plan with a package plan's key adds features to
    that plan (it may say nothing else). A meter (or alias), feature, plan
    feature or plan key that is already the package's is refused by name."""
    source = str(catalog_path(app))
    mine = _read(catalog_path(app), {"meters": [], "features": [], "plans": []})
    unknown = sorted(set(mine) - {"$schema", "meters", "features", "plans"})
    if unknown:
        raise SeedConflict(f"{source}: unknown key(s) {', '.join(unknown)} (known: meters, features, plans; "
                           f"permissions go in {permissions_path(app).name})")
    merged = copy.deepcopy(package)
    for section in ("meters", "features", "plans"):
        if not isinstance(mine.get(section, []), list):
            raise SeedConflict(f"{source}: \"{section}\" must be an array")
    theirs_meters = set(_keys(package["meters"], "meters", package_source))
    theirs_meters |= {a for m in package["meters"] for a in m.get("aliases", [])}
    for key in _keys(mine.get("meters", []), "meters", source):
        if key in theirs_meters:
            raise SeedConflict(f"{source}: meter \"{key}\" is already the package's ({package_source}); "
                               "choose another key for the app's meter")
    for meter in mine.get("meters", []):  # an alias the package's meters answer to would be taken from them
        aliases = meter.get("aliases", [])
        taken = [a for a in aliases if isinstance(a, str) and a in theirs_meters] if isinstance(aliases, list) else []
        if taken:
            raise SeedConflict(f"{source}: meter \"{meter['key']}\", alias \"{taken[0]}\": already the package's "
                               f"({package_source}); choose another alias")
    for key in _keys(mine.get("features", []), "features", source):
        if key in set(_keys(package["features"], "features", package_source)):
            raise SeedConflict(f"{source}: feature \"{key}\" is already the package's ({package_source}); "
                               "choose another key for the app's feature")
    merged["meters"] += mine.get("meters", [])
    merged["features"] += mine.get("features", [])
    plans = {p["key"]: p for p in merged["plans"]}
    for entry, plan in zip(mine.get("plans", []), _keys(mine.get("plans", []), "plans", source)):
        if plan not in plans:
            merged["plans"].append(entry)
            continue
        extra = sorted(set(entry) - {"key", "features"})
        if extra:
            raise SeedConflict(f"{source}: plan \"{plan}\" is the package's: the app may add features to it "
                               f"(\"key\" and \"features\" only), not set {', '.join(extra)}")
        features = entry.get("features", {})
        if not isinstance(features, dict):
            raise SeedConflict(f"{source}: plan \"{plan}\": \"features\" must be an object")
        taken = sorted(set(features) & set(plans[plan].get("features", {})))
        if taken:
            raise SeedConflict(f"{source}: plan \"{plan}\", feature(s) {', '.join(taken)}: already set by the "
                               f"package ({package_source})")
        plans[plan].setdefault("features", {}).update(features)
    return merged


def catalog_document(root: Path, app: AppProject | None, catalog: Path | None = None) -> tuple[dict, str]:
    """(the catalog `tenantdb seed` loads, where it came from): the package's
    seeds/catalog.json under root (or catalog), with the app's merged in."""
    path = catalog or root / "seeds" / "catalog.json"
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise TenantdbError(f"{path}: not a readable JSON catalog: {exc}") from exc
    if app is None:
        return document, str(path)
    return merged_catalog(document, str(path), app), f"{path} + {catalog_path(app)}"


def permissions(app: AppProject) -> list[dict]:
    """The app's permissions, checked for shape: key, description, roles."""
    source = str(permissions_path(app))
    document = _read(permissions_path(app), {"permissions": []})
    unknown = sorted(set(document) - {"$schema", "permissions"})
    if unknown or not isinstance(document.get("permissions", []), list):
        raise SeedConflict(f"{source}: an object with one key, \"permissions\": "
                           "[{\"key\": \"document.create\", \"description\": \"...\", \"roles\": [\"tenant_owner\"]}]")
    found: list[dict] = []
    for i, item in enumerate(document.get("permissions", [])):
        where = f"{source}: permissions[{i}]"
        if not isinstance(item, dict):
            raise SeedConflict(f"{where}: an object")
        extra = sorted(set(item) - {"key", "description", "roles"})
        if extra:
            raise SeedConflict(f"{where}: unknown key(s) {', '.join(extra)} (known: key, description, roles)")
        key = item.get("key")
        if not isinstance(key, str) or not PERMISSION_KEY.match(key):
            raise SeedConflict(f"{where}: \"key\" is lower-case words joined by dots, e.g. document.create; got {key!r}")
        if not isinstance(item.get("description"), str) or not item["description"].strip():
            raise SeedConflict(f"{where} (\"{key}\"): needs a \"description\" (what holding it allows)")
        roles = item.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise SeedConflict(f"{where} (\"{key}\"): \"roles\" is a list of tenant role keys, e.g. [\"tenant_owner\"]")
        if key in {p["key"] for p in found}:
            raise SeedConflict(f"{where}: \"{key}\" is declared twice")
        found.append({"key": key, "description": item["description"], "roles": roles})
    return found


# Where tenantdb keeps which permission keys an app declared (part of its
# bookkeeping; an exported seed.sql makes it too, before loading them).
OWNERSHIP = """
create table if not exists tenantdb.app_permissions (
  key text primary key,
  project text not null
);
comment on table tenantdb.app_permissions is 'The permissions an app project declared (its seeds/permissions.json): the one it may write again; any other existing key is the package''s.';
"""

# Loading an app's permissions: refuse (nothing written) a key that exists
# and is not this app's (the package's seeds made it, or someone else), or
# a role that is not a tenant role; then upsert the permissions, record them
# as the app's, and map them to their roles. {doc}, {project} and {source}
# are SQL literals. A taken key: 23505; an unknown role: 23503.
_CHECK = """do $permissions$
declare
  taken text;
  roles text;
begin
  select string_agg(p.key, ', ' order by p.key) into taken
    from iam.permissions p
   where p.key in (select x.key from jsonb_to_recordset({doc}) as x (key text))
     and not exists (select from tenantdb.app_permissions a where a.key = p.key and a.project = {project});
  if taken is not null then
    raise exception '%: permission(s) % already exist and are not %''s (the package''s seeds declare them): '
                    'use them as they are, or choose other keys. Nothing was seeded.', {source}, taken, {project}
      using errcode = '23505';
  end if;
  select string_agg(distinct r.role, ', ' order by r.role) into roles
    from jsonb_to_recordset({doc}) as x (key text, roles jsonb)
   cross join lateral jsonb_array_elements_text(x.roles) as r (role)
   where not exists (select from iam.roles t where t.key = r.role and not t.is_system);
  if roles is not null then
    raise exception '%: role(s) % are not tenant roles (known: %). Nothing was seeded.', {source}, roles,
      (select string_agg(key, ', ' order by key) from iam.roles where not is_system)
      using errcode = '23503';
  end if;
end
$permissions$;
"""
_UPSERT = """with declared as (
  select x.key, x.description from jsonb_to_recordset({doc}) as x (key text, description text)
), permissions as (
  insert into iam.permissions (key, description, is_platform)
  select key, description, false from declared
  on conflict (key) do update set description = excluded.description
   where iam.permissions.description is distinct from excluded.description
  returning key
), owned as (
  insert into tenantdb.app_permissions (key, project)
  select key, {project} from declared
  on conflict (key) do nothing
)
select count(*) as permissions_written from permissions;
"""
_MAPPINGS = """insert into iam.role_permissions (role_key, role_is_system, permission_key, permission_is_platform)
select r.key, r.is_system, x.key, false
  from jsonb_to_recordset({doc}) as x (key text, roles jsonb)
 cross join lateral jsonb_array_elements_text(x.roles) as m (role)
  join iam.roles r on r.key = m.role and not r.is_system
on conflict do nothing;
"""
# The file says which tenant roles hold the app's permissions: a mapping of
# a permission the app owns to a role the file no longer lists for it (or
# of a permission it no longer declares) is removed. Its one row: how many.
_REVOKE = """with revoked as (
  delete from iam.role_permissions rp
   using tenantdb.app_permissions a
   where a.project = {project} and rp.permission_key = a.key
     and not exists (select from jsonb_to_recordset({doc}) as x (key text, roles jsonb)
                      where x.key = rp.permission_key and x.roles ? rp.role_key)
  returning 1
)
select count(*) as mappings_removed from revoked;
"""


def permissions_statements(app: AppProject, declared: list[dict], source: str) -> list[str]:
    """The statements loading declared (permissions(app)) with the JSON
    inlined: a check refusing, with a message naming source, a taken key
    or an unknown role; the upsert (its one row: the permissions written);
    the role mappings; the removal of the mappings the file no longer
    lists (its one row: how many). `tenantdb seed` runs them
    (load_permissions); an export writes them into its seed.sql."""
    literals = {"doc": sqlquote(json.dumps(declared, ensure_ascii=False)) + "::jsonb", "project": sqlquote(app.name),
                "source": sqlquote(source)}
    return [template.format(**literals) for template in (_CHECK, _UPSERT, _MAPPINGS, _REVOKE)]


def load_permissions(conn: psycopg.Connection, app: AppProject) -> tuple[int, int]:
    """Upsert the app's permissions and make their role mappings the file's,
    in conn's transaction; refuse (nothing written) a key that is the
    package's, or a role that is not a tenant role. Returns (permissions
    written, role mappings removed)."""
    declared = permissions(app)
    source = str(permissions_path(app))
    check, upsert, mappings, revoke = permissions_statements(app, declared, source)
    try:
        conn.execute(check.encode())
        written = conn.execute(upsert.encode()).fetchone()[0]
        conn.execute(mappings.encode())
        removed = conn.execute(revoke.encode()).fetchone()[0]
    except psycopg.Error as exc:
        if (exc.diag.message_primary or "").startswith(f"{source}: "):  # the check's refusal
            raise SeedConflict(f"SQLSTATE {exc.sqlstate}: {exc.diag.message_primary}") from exc
        raise StatementError(source, "insert into iam.permissions ...", exc) from exc
    return written, removed
