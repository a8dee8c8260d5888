#!/usr/bin/env bash
# Create Fieldday's roles and database on a PostgreSQL server (see scripts/db_roles.sql).
# Usage: scripts/db_roles.sh [psql connection options for a superuser]
# Env: FIELDDAY_DB (default fieldday), OWNER_PASSWORD, APP_PASSWORD.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
psql -X -q -v ON_ERROR_STOP=1 \
  -v dbname="${FIELDDAY_DB:-fieldday}" \
  -v owner_password="${OWNER_PASSWORD:-fieldday_owner}" \
  -v app_password="${APP_PASSWORD:-fieldday_app}" \
  "$@" -d postgres -f "$here/db_roles.sql"
