-- Creates Fieldday's database roles and database. Run as a superuser, e.g.
--   psql -v owner_password=... -v app_password=... -v dbname=fieldday -f scripts/db_roles.sql
-- Safe to re-run: existing roles get their attributes and passwords reset.
--
--  fieldday_owner    LOGIN; owns the database, schema objects and runs migrations.
--  fieldday_app      LOGIN; what web and worker processes connect as. Owns nothing,
--                    no SUPERUSER, no BYPASSRLS; gets table privileges from migrations.
--  fieldday_definer  NOLOGIN BYPASSRLS; owns the few SECURITY DEFINER cross-tenant
--                    lookups (host -> tenant, e-mail -> accounts). Nobody logs in as it.
\set ON_ERROR_STOP on

SELECT format('CREATE ROLE fieldday_owner LOGIN') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fieldday_owner') \gexec
SELECT format('CREATE ROLE fieldday_app LOGIN') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fieldday_app') \gexec
SELECT format('CREATE ROLE fieldday_definer NOLOGIN') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fieldday_definer') \gexec

ALTER ROLE fieldday_owner WITH LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB PASSWORD :'owner_password';
ALTER ROLE fieldday_app WITH LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB NOINHERIT PASSWORD :'app_password';
ALTER ROLE fieldday_definer WITH NOLOGIN NOSUPERUSER BYPASSRLS NOCREATEROLE NOCREATEDB;
-- The owner may hand function ownership to the definer role (ALTER FUNCTION ... OWNER TO).
GRANT fieldday_definer TO fieldday_owner;

SELECT format('CREATE DATABASE %I OWNER fieldday_owner', :'dbname')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'dbname') \gexec

\connect :dbname
ALTER SCHEMA public OWNER TO fieldday_owner;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO fieldday_app, fieldday_definer;
-- ALTER FUNCTION ... OWNER TO fieldday_definer needs CREATE for the new owner. It is NOLOGIN:
-- only the owner role (a member) can act as it.
GRANT CREATE ON SCHEMA public TO fieldday_definer;
