#!/bin/sh
# The application's database role (README "Security", row-level security). PostgreSQL's image
# runs this once, when it initialises an empty data directory. For an existing one, run it by
# hand: docker compose -f docker/compose.yaml exec postgres sh /docker-entrypoint-initdb.d/10-app-role.sh
#
# POSTGRES_USER owns the tables and runs the migrations (the web container's
# MIGRATE_DATABASE_URL). The application connects as discreet_app: no superuser, no BYPASSRLS,
# not the tables' owner, so the row-level security policies bind every query it sends. It
# gets data rights only, on today's tables and (default privileges) on every table the owner
# creates later.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v owner="$POSTGRES_USER" -v app_password="${POSTGRES_APP_PASSWORD:?set POSTGRES_APP_PASSWORD}" <<'SQL'
SELECT format('CREATE ROLE discreet_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE PASSWORD %L',
              :'app_password')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'discreet_app') \gexec
SELECT format('ALTER ROLE discreet_app NOSUPERUSER NOBYPASSRLS PASSWORD %L', :'app_password') \gexec
SELECT format('GRANT CONNECT ON DATABASE %I TO discreet_app', current_database()) \gexec
GRANT USAGE ON SCHEMA public TO discreet_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO discreet_app;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO discreet_app;
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO discreet_app;
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
  GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO discreet_app;
SQL
