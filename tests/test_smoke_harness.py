from conftest import pg_major


def test_template_is_migrated_and_seeded(postgresql):
    roles = postgresql.execute("select count(*) from iam.roles").fetchone()[0]
    assert roles == 8
    version = postgresql.execute("select current_setting('server_version_num')::int").fetchone()[0]
    # The server the harness was asked for: Debian's 15 by default, the
    # embedded 18 in the second run of scripts/test.sh.
    assert version // 10000 == pg_major(), version
