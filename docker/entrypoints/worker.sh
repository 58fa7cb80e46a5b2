#!/bin/sh
# Worker. CELERY_QUEUES (comma-separated) picks the queues it consumes; unset, it consumes
# every queue (apps.core.queues). docker/compose.yaml runs two: one for privacy requests,
# ingest-side work and the rest, one for training alone, so a fit never delays an erasure.
set -eu
if [ -n "${CELERY_QUEUES:-}" ]; then
  set -- -Q "$CELERY_QUEUES"
fi
exec celery -A platform_site worker --loglevel "${LOG_LEVEL:-INFO}" \
  --concurrency "${CELERY_CONCURRENCY:-2}" "$@"
