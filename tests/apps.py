"""App projects for tests: `tenantdb init` in a temporary directory, then
the files of an app (by default a `documents` table: metered, gated by
max_documents, with permissions of its own), written as an app team would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

CLI = [sys.executable, str(ROOT / "cli.py")]

DOCUMENTS_MIGRATION = """\
create table app.documents (
  organization_id uuid not null references tenancy.organizations (id) on delete cascade,
  id uuid not null default gen_random_uuid(),
  title text not null,
  created_by uuid default auth.uid(),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (organization_id, id),
  constraint documents_title_length check (length(btrim(title)) between 1 and 200)
);
comment on table app.documents is 'Documents of an organization, written by its members.';
{{ m.table_grants('app.documents', 'select, delete') }}
grant insert (organization_id, id, title), update (title) on app.documents to authenticated;
"""

DOCUMENTS = {
    "migrations/0001_documents.sql": "{% import 'tenantdb/macros.sql' as m with context %}\n" + DOCUMENTS_MIGRATION,
    "migrations/0001_documents.rollback.sql": "drop table app.documents;\n",
    "policies/0001_documents.sql": (
        "{% import 'tenantdb/macros.sql' as m with context %}\n"
        "{{ m.tenant_policies('app.documents', read='tenant.read', insert='document.create', "
        "update='document.update', delete='document.delete') }}\n"),
    "functions/0001_documents.sql": (
        "{% import 'tenantdb/macros.sql' as m with context %}\n"
        "{{ m.metered('app.documents', 'max_documents') }}\n{{ m.updated_at('app.documents') }}\n"),
    "seeds/permissions.json": json.dumps({"permissions": [
        {"key": "document.create", "description": "Create documents.",
         "roles": ["tenant_owner", "tenant_admin", "tenant_member"]},
        {"key": "document.update", "description": "Edit documents.",
         "roles": ["tenant_owner", "tenant_admin", "tenant_member"]},
        {"key": "document.delete", "description": "Delete documents.", "roles": ["tenant_owner", "tenant_admin"]},
    ]}, indent=2),
    "seeds/catalog.json": json.dumps({
        "meters": [{"key": "documents", "name": "Documents", "unit": "document", "aggregation": "live_count"}],
        "features": [{"key": "max_documents", "name": "Documents", "kind": "limit", "meter": "documents"}],
        "plans": [{"key": "free", "features": {"max_documents": {"limit": 2}}},
                  {"key": "pro", "features": {"max_documents": {"limit": 1000}}}],
    }, indent=2),
}


def cli(*args: str, cwd: Path, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run the checkout's tenantdb CLI in cwd (the package's SQL: the checkout's)."""
    return subprocess.run(CLI + list(args), capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


def make_app(base: Path, name: str = "shop", files: dict[str, str] | None = None) -> Path:
    """`tenantdb init base/name --name name`, then files (default DOCUMENTS) written over it."""
    proc = cli("init", str(base / name), "--name", name, cwd=base)
    assert proc.returncode == 0, proc.stderr
    root = base / name
    for relpath, text in (DOCUMENTS if files is None else files).items():
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        (root / relpath).write_text(text)
    return root
