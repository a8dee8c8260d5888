#!/bin/sh
# The image's one entry point: `docker run IMAGE web|worker|scheduler|migrate` (Container Apps
# passes the role as the container's args). Each role replaces this shell (exec), so SIGTERM
# from the platform reaches the process that knows how to shut down gracefully.
set -eu
export FLASK_APP="${FLASK_APP:-wsgi.py}"
role="${1:-web}"
[ $# -gt 0 ] && shift
case "$role" in
  web)
    # gunicorn: SIGTERM stops accepting, lets in-flight requests finish within graceful_timeout.
    exec gunicorn --config "$(dirname "$0")/gunicorn.conf.py" wsgi:app "$@" ;;
  worker)
    # RQ warm shutdown: SIGTERM lets the running job finish (the platform's grace period must
    # exceed the longest job_timeout), then exits 0.
    exec flask worker "$@" ;;
  scheduler)
    # Exactly one replica: `flask cron` (periodic enqueues) + the RQ scheduler (due retries and
    # enqueue_at jobs, even while the worker app is scaled to zero).
    exec python "$(dirname "$0")/scheduler.py" "$@" ;;
  migrate)
    # One-off job: [bootstrap roles as the server admin], upgrade as the owner role, grant readiness.
    exec python "$(dirname "$0")/migrate.py" "$@" ;;
  *)
    exec "$role" "$@" ;;
esac
