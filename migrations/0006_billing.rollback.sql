drop schema if exists billing cascade;
