drop schema if exists usage cascade;
