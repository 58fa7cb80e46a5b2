#!/bin/sh
# Worker: training, privacy requests, retention, audit verification.
set -eu
exec celery -A platform_site worker --loglevel "${LOG_LEVEL:-INFO}" \
  --concurrency "${CELERY_CONCURRENCY:-2}"
