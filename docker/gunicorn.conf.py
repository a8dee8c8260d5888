"""gunicorn settings for the web role (docker/entrypoint.sh web). Values come from the environment
so the Bicep parameters can size them without a new image."""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("WEB_THREADS", "4"))
# Graceful shutdown: on SIGTERM, stop accepting and give in-flight requests this long. It must be
# below the container's terminationGracePeriodSeconds (infra/bicep/modules/apps.bicep: 30 s).
graceful_timeout = int(os.environ.get("WEB_GRACEFUL_TIMEOUT", "20"))
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
keepalive = 5
# Heartbeat files on tmpfs, not on the (possibly slow) container filesystem.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# The app writes one JSON access line per request with request and tenant ids (app/observability.py);
# gunicorn's own access log would repeat it, with manage-my-booking tokens in the path.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# No preload: each worker builds the app itself, so database pools and OpenTelemetry exporter
# threads are created after the fork, never shared.
preload_app = False
# Recycle workers now and then (bounded memory growth), staggered so they never restart together.
max_requests = int(os.environ.get("WEB_MAX_REQUESTS", "5000"))
max_requests_jitter = 500
