#!/bin/sh
# The image's entry point: one image, the process chosen by the first argument (deploy/ sets it).
#   web       gunicorn with config/gunicorn.py (PORT, GUNICORN_* variables)
#   worker    celery -A config worker (more arguments are passed on, e.g. --concurrency 4)
#   beat      celery -A config beat: exactly one per installation (deploy/ runs one, strategy Recreate)
#   wait-for-migrations   until `manage.py migrate --check` passes (an init container: new code waits for
#             the migration Job, old pods keep serving meanwhile)
#   manage    manage.py with the remaining arguments: migrate, reclaim_leases, check --deploy, shell ...
#   anything else is run as given.
set -eu
# prometheus-client's multiprocess directory must exist before Django starts (config/settings.py).
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then mkdir -p "$PROMETHEUS_MULTIPROC_DIR"; fi
cmd="${1:-web}"
[ "$#" -gt 0 ] && shift
case "$cmd" in
  web) exec gunicorn -c /app/config/gunicorn.py "$@" ;;
  worker) exec celery -A config worker --loglevel "${LOG_LEVEL:-INFO}" "$@" ;;
  # The schedule's state file goes to /tmp: the root filesystem is read-only. Losing it on restart only
  # runs each job once at start-up, which every job tolerates.
  beat) exec celery -A config beat --loglevel "${LOG_LEVEL:-INFO}" --schedule /tmp/celerybeat-schedule "$@" ;;
  wait-for-migrations)
    until python /app/manage.py migrate --check >/dev/null; do
      echo "waiting for the migration Job (manage.py migrate --check: unapplied migrations)" >&2
      sleep 5
    done ;;
  manage) exec python /app/manage.py "$@" ;;
  *) exec "$cmd" "$@" ;;
esac
