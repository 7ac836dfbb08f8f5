"""Every privileged table, listed from the catalog, writes an audit row in
the same transaction as any change to it, and no client role can switch
that off."""

from __future__ import annotations

import psycopg
import pytest

# The privileged changes of DESIGN.md and issue 4; the catalog must list
# exactly these tables as audited.
PRIVILEGED = {
    "iam.system_role_grants", "catalog.plans", "catalog.plan_features", "billing.credit_ledger",
    "tenancy.organizations", "audit.impersonation_sessions", "audit.impersonation_endings", "audit.break_glass_events",
    "privacy.erasures", "billing.subscriptions", "billing.invoices", "billing.one_off_payments",
    "iam.roles", "iam.permissions", "iam.role_permissions", "privacy.data_inventory", "privacy.subject_requests",
    "tenancy.memberships",  # ownership changes (issue 10)
    "catalog.limits",  # the caps on what a tenant can pile up (issue 10)
}

AUDITED_TABLES = """
select distinct format('%s.%s', n.nspname, c.relname)
  from pg_trigger t join pg_class c on c.oid = t.tgrelid join pg_namespace n on n.oid = c.relnamespace
 where t.tgname like 'audit_platform_action%' and not t.tgisinternal and t.tgenabled = 'O'
"""


def audit_rows(conn: psycopg.Connection, table: str) -> int:
    return conn.execute("select count(*) from audit.platform_actions where target_table = %s", (table,)).fetchone()[0]


def test_the_catalog_lists_every_privileged_table(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        assert {r[0] for r in conn.execute(AUDITED_TABLES)} == PRIVILEGED


# One privileged change per table, as the superuser (the role least bound by
# anything): the audit row still appears in the same transaction.
CHANGES = {
    "iam.system_role_grants": "insert into iam.system_role_grants (user_id, role_key, reason) values (%(user)s, 'platform_admin', 'audit test')",
    "catalog.plans": "update catalog.plans set name = name || ' ' where key = 'pro'",
    "catalog.plan_features": "update catalog.plan_features set limit_value = limit_value + 1 where plan_key = 'pro' and feature_key = 'max_records'",
    "billing.credit_ledger": "insert into billing.credit_ledger (organization_id, amount_minor, currency, source, reason, idempotency_key) "
                             "values (%(org)s, 100, 'USD', 'admin', 'audit test', 'audit-test')",
    "tenancy.organizations": "update tenancy.organizations set status = 'suspended' where id = %(org)s",
    "catalog.limits": "update catalog.limits set value = value + 1 where key = 'consents.per_user_per_day'",
    "tenancy.memberships": "update tenancy.memberships set role_key = 'tenant_admin' where organization_id = %(org)s and user_id = %(user)s",
    "audit.impersonation_sessions": "insert into audit.impersonation_sessions (impersonator_id, target_user_id, reason, expires_at) "
                                    "values (%(staff)s, %(user)s, 'audit test', now() + interval '5 minutes')",
    "audit.impersonation_endings": "insert into audit.impersonation_endings (session_id) select id from audit.impersonation_sessions limit 1",
    "billing.subscriptions": "update billing.subscriptions set seats = seats + 1 where organization_id = %(org)s",
    "billing.invoices": "update billing.invoices set status = 'void' where organization_id = %(org)s",
    "billing.one_off_payments": "insert into billing.one_off_payments (organization_id, provider, provider_payment_id, amount_minor, currency, reason) "
                                "values (%(org)s, 'stripe', 'pi_cov', 100, 'USD', 'addon')",
    "iam.roles": "update iam.roles set description = 'changed' where key = 'tenant_guest'",
    "iam.permissions": "update iam.permissions set description = 'changed' where key = 'tenant.read'",
    "iam.role_permissions": "insert into iam.role_permissions values ('tenant_guest', false, 'member.invite', false)",
    "privacy.data_inventory": "update privacy.data_inventory set retention = 'changed' where column_name = 'bio'",
    "privacy.subject_requests": "update privacy.subject_requests set status = 'verified' where user_id = %(user)s",
    "privacy.erasures": "insert into privacy.erasures (user_id, columns_erased, rows_deleted) values (%(user)s, 0, 0)",
    "audit.break_glass_events": "insert into audit.break_glass_events (user_id, grant_id, reason, expires_at) "
                                "select user_id, id, 'audit coverage test', now() + interval '5 minutes' from iam.system_role_grants limit 1",
}


@pytest.mark.parametrize("table", sorted(PRIVILEGED))
def test_a_change_without_an_audit_row_is_impossible(dsn: str, table: str) -> None:
    with psycopg.connect(dsn) as conn:
        user = conn.execute("insert into auth.users (email) values ('subject@a.test') returning id").fetchone()[0]
        staff = conn.execute("insert into auth.users (email) values ('staffer@a.test') returning id").fetchone()[0]
        org = conn.execute("select id from tenancy.organizations where personal_owner_id = %s", (user,)).fetchone()[0]
        conn.execute("insert into audit.impersonation_sessions (impersonator_id, target_user_id, reason, expires_at) "
                     "values (%s, %s, 'setup row', now() + interval '5 minutes')", (staff, user))
        conn.execute("insert into iam.system_role_grants (user_id, role_key, reason) values (%s, 'platform_break_glass', 'setup')", (staff,))
        conn.execute("select public.generate_invoice(%s, (select start_date from private.billing_period(%s, now())))", (org, org))
        conn.execute("insert into privacy.subject_requests (user_id, request_type) values (%s, 'access')", (user,))
        before = audit_rows(conn, table)
        cur = conn.execute(CHANGES[table], {"user": user, "org": org, "staff": staff})
        assert cur.rowcount >= 1
        assert audit_rows(conn, table) == before + cur.rowcount
        conn.rollback()


@pytest.mark.parametrize("role", ["service_role", "authenticated", "anon"])
def test_no_client_role_can_switch_auditing_off(dsn: str, role: str) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute(f"set role {role}")
        for table in sorted(PRIVILEGED):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                with conn.transaction():
                    conn.execute(f"alter table {table} disable trigger audit_platform_action")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            with conn.transaction():
                conn.execute("set session_replication_role = replica")
