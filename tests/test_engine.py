"""The migration engine on a real server: locking, atomicity, checksums,
repeatables, rollback, and fresh install = upgrade."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from conftest import ROOT, pg_tool
from tenantdb.engine import LOCK_KEY, Engine
from tenantdb import verify
from tenantdb.errors import EditedChange, LockTimeout, StatementError, TenantdbError
from tenantdb.paths import SQL_DIRS
from tenantdb.render import Renderer, Target

CLI = [sys.executable, str(ROOT / "cli.py")]
CHANGE_IDS = [c.id for c in Renderer(Target()).changes()]


def engine(dsn: str, root: Path | None = None, lines: list[str] | None = None, **kw) -> Engine:
    sink = lines if lines is not None else []
    return Engine(dsn, Renderer(Target(), root=root), echo=sink.append, **kw)


@pytest.fixture
def sql_copy(tmp_path: Path) -> Path:
    """A private copy of the package's SQL that a test may edit."""
    for d in SQL_DIRS:
        shutil.copytree(ROOT / d, tmp_path / d)
    return tmp_path


def scalar(dsn: str, query: str) -> object:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query).fetchone()[0]


def schema_dump(dsn: str, *exclude: str) -> str:
    """pg_dump's schema (less the schemas excluded), without comments; its
    GRANT and REVOKE lines sorted, at the end: an ACL's order means
    nothing, and the same grants made in another order
    (organization_scoped's are mirrored after a file re-grants
    authenticated's) are dumped in another order."""
    args = [pg_tool("pg_dump"), "--schema-only", "--no-owner", "-d", dsn]
    for schema in exclude:
        args += ["--exclude-schema", schema]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    lines = [l for l in out.splitlines() if l.strip() and not l.startswith("--") and not l.startswith("\\")]
    acl = sorted(l for l in lines if l.startswith(("GRANT ", "REVOKE ")))
    return "\n".join([l for l in lines if not l.startswith(("GRANT ", "REVOKE "))] + acl)


def test_concurrent_migrate_applies_once(empty_db: str) -> None:
    procs = [subprocess.Popen(CLI + ["--dsn", empty_db, "migrate"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    applied = [line for out, _ in outs for line in out.splitlines() if line.startswith("applied ")]
    changes = Renderer(Target()).changes()
    assert len(applied) == len(changes), outs  # each change applied by exactly one of the two runs
    assert scalar(empty_db, "select count(*) from tenantdb.changes") == len(changes)
    assert scalar(empty_db, "select count(*) from tenantdb._yoyo_log where operation = 'apply'") == len(changes)


def test_lock_timeout_is_a_clear_error(empty_db: str) -> None:
    with psycopg.connect(empty_db, autocommit=True) as holder:
        holder.execute("select pg_advisory_lock(%s)", (LOCK_KEY,))
        started = time.monotonic()
        proc = subprocess.run(CLI + ["--dsn", empty_db, "migrate", "--lock-timeout", "1"], capture_output=True, text=True)
        waited = time.monotonic() - started
    assert proc.returncode == 4, proc.stderr
    assert "holds the migration lock" in proc.stderr and "Traceback" not in proc.stderr
    assert waited < 30
    assert scalar(empty_db, "select to_regclass('identity.users') is null")


def test_failing_migration_leaves_nothing(empty_db: str, sql_copy: Path) -> None:
    engine(empty_db, sql_copy).migrate()
    (sql_copy / "migrations" / "0099_broken.sql").write_text(
        "create table tenancy.half_done (id uuid primary key);\n"
        "insert into tenancy.half_done values ('not-a-uuid');\n")
    (sql_copy / "migrations" / "0099_broken.rollback.sql").write_text("drop table tenancy.half_done;\n")
    with pytest.raises(StatementError) as err:
        engine(empty_db, sql_copy).migrate()
    message = str(err.value)
    assert "migrations/0099_broken.sql" in message and "SQLSTATE 22P02" in message and "not-a-uuid" in message
    assert scalar(empty_db, "select to_regclass('tenancy.half_done') is null")
    assert scalar(empty_db, "select count(*) from tenantdb.changes where change_id = '0099_broken'") == 0
    assert scalar(empty_db, "select count(*) from tenantdb._yoyo_migration where migration_id = '0099_broken'") == 0
    assert engine(empty_db, sql_copy).status().pending == ["0099_broken"]


def test_failing_repeatable_rolls_back_its_change(empty_db: str, sql_copy: Path) -> None:
    with (sql_copy / "functions" / "0004_tenancy.sql").open("a") as f:
        f.write("\nselect 1/0;\n")
    with pytest.raises(StatementError) as err:
        engine(empty_db, sql_copy).migrate()
    assert "functions/0004_tenancy.sql" in str(err.value) and "22012" in str(err.value)
    st = engine(empty_db, sql_copy).status()
    cut = CHANGE_IDS.index("0004_tenancy")
    assert st.pending == CHANGE_IDS[cut:] and st.applied == CHANGE_IDS[:cut]
    assert scalar(empty_db, "select to_regclass('tenancy.memberships') is null")


def test_edited_applied_file_is_reported_and_refused(empty_db: str, sql_copy: Path) -> None:
    engine(empty_db, sql_copy).migrate()
    path = sql_copy / "migrations" / "0002_identity.sql"
    path.write_text(path.read_text() + "\n-- a late edit\n")
    st = engine(empty_db, sql_copy).status()
    assert st.edited == ["0002_identity"] and not st.pending
    with pytest.raises(EditedChange):
        engine(empty_db, sql_copy).migrate()
    problems = verify.problems(engine(empty_db, sql_copy))
    # (not seeded: verify also says the catalog has no free plan, and the seeds' rows are missing)
    assert [(p.check, p.object) for p in problems if p.check not in ("catalog", "seeded")] == [("edited", "0002_identity")]


def test_changed_repeatable_is_reapplied(empty_db: str, sql_copy: Path) -> None:
    engine(empty_db, sql_copy).migrate()
    path = sql_copy / "functions" / "0002_identity.sql"
    path.write_text(path.read_text().replace("Returns true when the user name is well formed", "True when the user name is well formed"))
    st = engine(empty_db, sql_copy).status()
    assert st.stale_repeatables == ["functions/0002_identity.sql"]
    lines: list[str] = []
    engine(empty_db, sql_copy, lines).migrate()
    assert len(lines) == 1 and lines[0].startswith("reapplied functions/0002_identity.sql")
    assert engine(empty_db, sql_copy).status().clean
    assert scalar(empty_db, "select obj_description('public.check_username_available'::regproc)").startswith("True when")


def test_fresh_install_equals_upgrade_and_round_trip(empty_db_factory) -> None:
    fresh, stepwise, roundtrip = empty_db_factory(), empty_db_factory(), empty_db_factory()
    engine(fresh).migrate()
    for change in Renderer(Target()).changes():
        engine(stepwise).migrate(to=change.id)
    engine(roundtrip).migrate()
    engine(roundtrip).rollback(all_=True, allow_data_loss=True)
    engine(roundtrip).migrate()
    assert schema_dump(stepwise) == schema_dump(fresh)
    assert schema_dump(roundtrip) == schema_dump(fresh)


def test_rollback_all_leaves_only_bookkeeping(empty_db: str) -> None:
    engine(empty_db).migrate()
    lines: list[str] = []
    assert engine(empty_db, lines=lines).rollback(all_=True, allow_data_loss=True) == len(CHANGE_IDS)
    assert [l.split()[1] for l in lines if l.startswith("reverted ")] == CHANGE_IDS[::-1]
    schemas = scalar(empty_db, "select array_agg(nspname::text order by nspname) from pg_namespace "
                               "where nspname not like 'pg\\_%' and nspname <> 'information_schema'")
    assert schemas == ["public", "tenantdb"]
    assert scalar(empty_db, "select count(*) from pg_proc where pronamespace = 'public'::regnamespace") == 0
    assert scalar(empty_db, "select count(*) from tenantdb.changes") == 0


def test_rollback_steps_and_to(empty_db: str) -> None:
    engine(empty_db).migrate()
    assert engine(empty_db).rollback(steps=1) == 1
    assert engine(empty_db).status().pending == CHANGE_IDS[-1:]
    assert engine(empty_db).rollback(to="0001_foundation", allow_data_loss=True) == len(CHANGE_IDS) - 2
    assert engine(empty_db).status().applied == ["0001_foundation"]
    assert scalar(empty_db, "select to_regprocedure('public.has_system_permission(text)') is null")


def test_backfill_provisions_existing_users(empty_db: str) -> None:
    engine(empty_db).migrate(to="0003_iam")
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute("insert into auth.users (email) values ('early@bird.test'), ('second@bird.test')")
    engine(empty_db).migrate()
    assert scalar(empty_db, "select count(*) from tenancy.organizations where is_personal") == 2
    assert scalar(empty_db, "select count(*) from identity.users") == 2


def test_changed_signature_drops_the_old_overload(empty_db: str, sql_copy: Path) -> None:
    engine(empty_db, sql_copy).migrate()
    path = sql_copy / "functions" / "0004_tenancy.sql"
    text = path.read_text()
    text = text.replace("create or replace function private.leave_organization(organization_id uuid)",
                        "create or replace function private.leave_organization(organization_id uuid, note text default null)")
    path.write_text(text)
    lines: list[str] = []
    engine(empty_db, sql_copy, lines).migrate()
    assert ("dropped private.leave_organization(uuid) (functions/0004_tenancy.sql defines it with other parameters, "
            "or not at all)") in lines
    assert scalar(empty_db, "select count(*) from pg_proc where proname = 'leave_organization' and pronamespace = 'private'::regnamespace") == 1
    assert engine(empty_db, sql_copy).rollback(all_=True, allow_data_loss=True) == len(CHANGE_IDS)


def test_renamed_parameter_replaces_the_function(empty_db: str, sql_copy: Path) -> None:
    """create or replace cannot rename a parameter (42P13): a file that
    renames one gets its function dropped and created again, same types."""
    engine(empty_db, sql_copy).migrate()
    path = sql_copy / "functions" / "0004_tenancy.sql"
    text = path.read_text()
    assert "{{ m.api_function('leave_organization', 'p_organization_id uuid', 'void', 'p_organization_id'," in text
    path.write_text(text.replace("{{ m.api_function('leave_organization', 'p_organization_id uuid', 'void', 'p_organization_id',",
                                 "{{ m.api_function('leave_organization', 'p_org uuid', 'void', 'p_org',"))
    lines: list[str] = []
    engine(empty_db, sql_copy, lines).migrate()
    assert any(line.startswith("dropped public.leave_organization(uuid)") for line in lines), lines
    assert scalar(empty_db, "select pg_get_function_identity_arguments('public.leave_organization'::regproc)") == "p_org uuid"


def test_changed_repeatables_are_reapplied_all_or_nothing(empty_db: str, sql_copy: Path) -> None:
    engine(empty_db, sql_copy).migrate()
    good = sql_copy / "functions" / "0002_identity.sql"
    good.write_text(good.read_text().replace("Returns true when the user name is well formed", "Edited: well formed"))
    bad = sql_copy / "functions" / "0003_iam.sql"
    bad.write_text(bad.read_text() + "\nselect 1/0;\n")
    with pytest.raises(StatementError):
        engine(empty_db, sql_copy).migrate()
    assert scalar(empty_db, "select obj_description('public.check_username_available'::regproc)").startswith("Returns true")
    assert engine(empty_db, sql_copy).status().stale_repeatables == ["functions/0002_identity.sql", "functions/0003_iam.sql"]


def test_released_migrations_render_as_they_were_released() -> None:
    """A database migrated by an earlier release records each change's
    checksum; if today's files render a released migration differently
    (an edited file, or a macro it uses that changed, such as the list of
    domain schemas), every upgrade stops at "applied change(s) edited".
    tests/fixtures/released_checksums.json holds the released checksums
    (add a release's new migrations to it when it ships)."""
    import json

    released = json.loads((Path(__file__).parent / "fixtures" / "released_checksums.json").read_text())
    for target, checksums in released.items():
        now = {c.id: c.checksum for c in Renderer(Target(target)).changes()}
        changed = sorted(cid for cid, digest in checksums.items() if now.get(cid) != digest)
        assert not changed, f"{target}: released migrations render differently now: {changed}"


def test_rollback_refuses_to_take_someone_elses_objects_with_it(empty_db: str) -> None:
    """A view of someone else's on a view or a function of the change makes
    the rollback refuse (2BP01) and change nothing; without it, it goes."""
    upto = CHANGE_IDS[: CHANGE_IDS.index("0016_client_services") + 1]
    engine(empty_db).migrate("0016_client_services")  # its newest change
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute("create schema reports")
        conn.execute("create view reports.payments as select organization_id, amount from client_services.billing_records")
    with pytest.raises(StatementError) as refused:
        engine(empty_db).rollback()
    assert refused.value.sqlstate == "2BP01"
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute("drop view reports.payments")
        conn.execute("create view reports.exponent as select private.currency_exponent('USD') as e")
    with pytest.raises(StatementError) as refused:
        engine(empty_db).rollback()
    assert refused.value.sqlstate == "2BP01" and "reports.exponent" in str(refused.value)
    assert engine(empty_db).status().applied == upto
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute("drop schema reports cascade")
    assert engine(empty_db).rollback() == 1
    assert engine(empty_db).status().pending == CHANGE_IDS[len(upto) - 1 :]


def test_rollback_refuses_while_a_left_out_change_is_applied(empty_db: str) -> None:
    engine(empty_db).migrate()
    without = Engine(empty_db, Renderer(Target(), without=("0016_client_services",)), echo=lambda _l: None)
    with pytest.raises(TenantdbError, match="0016_client_services are not in the selection"):
        without.rollback()
    assert engine(empty_db).status().applied == CHANGE_IDS


def test_rollback_to_before_0015_leaves_a_working_database(empty_db: str) -> None:
    """Rolled back to 0014 (before the meter aliases), the database holds
    0014's schema; migrated forward again it works, and verify names the
    seeded rows the rollback took until the seeds run again. (Between the
    two, it has this release's functions over 0014's tables: the usage
    functions need this release's tables, docs/operations.md, Upgrades.)"""
    engine(empty_db).migrate()
    engine(empty_db).seed()
    assert engine(empty_db).rollback(to="0014_projects", allow_data_loss=True) == len(CHANGE_IDS) - CHANGE_IDS.index("0014_projects") - 1
    with psycopg.connect(empty_db, autocommit=True) as conn:
        assert conn.execute("select to_regclass('catalog.meter_aliases')").fetchone()[0] is None
    engine(empty_db).migrate()
    # the aliases went with 0015's table: verify says so until the seeds run again
    assert [(p.check, p.object) for p in verify.problems(engine(empty_db))] == [("seeded", "catalog.meter_aliases")]
    engine(empty_db).seed()
    assert verify.problems(engine(empty_db)) == []
    with psycopg.connect(empty_db, autocommit=True) as conn:
        uid = conn.execute("insert into auth.users (email) values ('after@rollback.test') returning id").fetchone()[0]
        org = conn.execute("select id from tenancy.organizations where personal_owner_id = %s", (uid,)).fetchone()[0]
        assert conn.execute("select duplicate from record_usage(%s, 'api_call', 1, 'k1')", (org,)).fetchone()[0] is False
        assert conn.execute("select duplicate from record_usage(%s, 'max_api_calls_per_month', 1, 'k2')", (org,)).fetchone()[0] is False
        assert conn.execute("select duplicate from record_usage(%s, 'api_calls', 1, 'k3')", (org,)).fetchone()[0] is False
