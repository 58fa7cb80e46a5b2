#!/bin/sh
# Beat: the one scheduler (run exactly one replica).
set -eu
exec celery -A platform_site beat --loglevel "${LOG_LEVEL:-INFO}" \
  --schedule /app/var/celerybeat-schedule
