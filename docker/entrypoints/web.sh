#!/bin/sh
# Web: apply migrations (unless MIGRATE_ON_START=false), then serve with gunicorn.
# --limit-request-line: a 512-character subject id in the path, percent-encoded, is up to
# ~6 KB; gunicorn's default 4 KB would answer it with its own HTML 400.
set -eu
if [ "${MIGRATE_ON_START:-true}" = "true" ]; then
  # As the tables' owner when MIGRATE_DATABASE_URL names one (the app's role may not run DDL).
  DATABASE_URL="${MIGRATE_DATABASE_URL:-$DATABASE_URL}" python manage.py migrate --noinput
fi
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
  # Metrics of several gunicorn workers (README "Metrics"): each starts from zero.
  mkdir -p "$PROMETHEUS_MULTIPROC_DIR" && find "$PROMETHEUS_MULTIPROC_DIR" -name '*.db' -delete
fi
# Sync workers behind the proxy (Caddy holds the clients' connections and TLS, but passes a
# request body through as it arrives: a slow upload holds one worker, at most WEB_TIMEOUT):
# the steadiest throughput and p99 measured (bench/README.md); WEB_WORKER_CLASS=gthread with
# WEB_THREADS > 1 keeps connections alive instead. --preload imports the app once, before the fork (README
# "Serving at web speed").
exec gunicorn platform_site.wsgi:application \
  --bind "0.0.0.0:${PORT:-8000}" \
  --workers "${WEB_CONCURRENCY:-2}" \
  --worker-class "${WEB_WORKER_CLASS:-sync}" --threads "${WEB_THREADS:-1}" \
  --keep-alive "${WEB_KEEPALIVE:-5}" \
  --preload \
  --timeout "${WEB_TIMEOUT:-60}" \
  --limit-request-line 8190 \
  --access-logfile - \
  --access-logformat '%(m)s %(U)s %(s)s %(b)s %(M)sms'
