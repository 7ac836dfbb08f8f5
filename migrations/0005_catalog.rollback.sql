drop schema if exists catalog cascade;
