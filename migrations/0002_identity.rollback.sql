{% if target == 'postgres' %}
drop table if exists identity.verifications;
drop table if exists identity.accounts;
drop table if exists identity.sessions;
{% endif %}
drop table if exists identity.reserved_usernames;
drop table if exists identity.users;
