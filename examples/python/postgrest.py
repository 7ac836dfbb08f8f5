"""What the examples share: the request blocks of `tenantdb.client` (re-exported
here for code that imported them from this file) and the examples' command
line.

The request blocks are part of the package now:

    from tenantdb.client import as_anon, as_service, as_user, connect, request, sign_up

Each runs one transaction as PostgREST runs a request: `set local role`
and the JWT's claims in `request.jwt.claims` (and the pre-request
`scope_request` for a request that names its organization). See
tenantdb/client.py and docs/app-guide.md.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from tenantdb.client import SWITCH, as_anon, as_service, as_user, connect, request, sign_up

__all__ = ["SWITCH", "as_anon", "as_service", "as_user", "connect", "request", "sign_up", "example_dsn", "run_example"]


def example_dsn(argv: list[str], doc: str | None) -> str:
    """The DSN an example runs against: its one argument; without one,
    DATABASE_URL, DATABASE_URL in ./.env, or the server `tenantdb up` started
    in ./.tenantdb (as the tenantdb commands find it)."""
    if len(argv) > 2 or (len(argv) == 2 and argv[1] in ("-h", "--help")):
        sys.exit(doc)
    if len(argv) == 2:
        return argv[1]
    from tenantdb.db import resolve_dsn
    from tenantdb.errors import TenantdbError

    try:
        dsn = resolve_dsn(None)
    except TenantdbError as exc:
        sys.exit(f"{exc}")
    if not dsn:
        sys.exit(f"{doc}\nno database: give its DSN, set DATABASE_URL, or run `tenantdb up` in this directory first")
    return dsn


def run_example(main: Callable[[str], Any], doc: str | None) -> None:
    """The command line of every example: `python <example>.py [DSN]`."""
    main(example_dsn(sys.argv, doc))
