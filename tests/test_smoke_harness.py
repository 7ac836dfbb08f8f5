def test_template_is_migrated_and_seeded(postgresql):
    roles = postgresql.execute("select count(*) from iam.roles").fetchone()[0]
    assert roles == 8
    version = postgresql.execute("select current_setting('server_version_num')::int").fetchone()[0]
    assert 150000 <= version < 160000
