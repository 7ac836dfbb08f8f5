"""Errors the CLI turns into one-line messages and exit codes."""

from __future__ import annotations

# Exit codes, documented in docs/cli.md.
EXIT_OK = 0
EXIT_FAILED = 1  # a statement failed, or verify found problems
EXIT_USAGE = 2  # bad arguments (click's own code)
EXIT_CONNECT = 3  # the database could not be reached
EXIT_LOCKED = 4  # another tenantdb held the migration lock past --lock-timeout
EXIT_EDITED = 5  # an applied migration file was edited: refusing to continue


class TenantdbError(Exception):
    """An error with a message for a DBA and an exit code."""

    exit_code = EXIT_FAILED


class UsageProblem(TenantdbError):
    """Arguments that do not fit the database or the package (exit 2)."""

    exit_code = EXIT_USAGE


class ConnectError(TenantdbError):
    exit_code = EXIT_CONNECT


class LockTimeout(TenantdbError):
    exit_code = EXIT_LOCKED


class EditedChange(TenantdbError):
    exit_code = EXIT_EDITED


class StatementError(TenantdbError):
    """A SQL statement failed: names the file, the statement and the SQLSTATE."""

    def __init__(self, source: str, statement: str, error: Exception, line: int | None = None, note: str = "") -> None:
        diag = getattr(error, "diag", None)
        sqlstate = getattr(diag, "sqlstate", None) or "?????"
        primary = getattr(diag, "message_primary", None) or str(error).strip()
        where = ""
        position = getattr(diag, "statement_position", None)
        self.located = bool(position and str(position).isdigit()) or line is not None
        if line is not None:
            # the statement that failed, found by running them one by one
            where = f" at line {line} of the rendered SQL, in: {' '.join(statement.split())[:300]}"
        elif position and str(position).isdigit():
            offset = int(position) - 1
            line_no = statement.count("\n", 0, offset) + 1
            line_text = statement.splitlines()[line_no - 1].strip() if statement else ""
            where = f" at line {line_no} of the rendered SQL: {line_text[:120]}"
        else:
            where = f" [in: {' '.join(statement.split())[:120]}]"
        super().__init__(f"{source}: SQLSTATE {sqlstate}: {primary}{where}" + (f" ({note})" if note else ""))
        self.sqlstate = sqlstate
        self.source = source


EXIT_REFUSED = 6  # refused to destroy data (or to act on a database) without consent: --yes / --force


class DataLoss(TenantdbError):
    """A rollback or a destructive change would drop tables or columns holding
    data, and nobody agreed (--yes). Nothing was changed."""

    exit_code = EXIT_REFUSED

    def __init__(self, source: str, lost: list[str]) -> None:
        self.lost = lost
        listed = "\n".join(f"  {item}" for item in lost)
        super().__init__(f"{source} would drop data:\n{listed}\n"
                         "nothing was changed; run it again with --yes to drop it (take a backup first)")


class Refused(TenantdbError):
    """A command refused a database it was not meant for (exit 6)."""

    exit_code = EXIT_REFUSED


class PooledConnection(ConnectError):
    """The connection goes through a transaction pooler (exit 3)."""
