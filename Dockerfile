# syntax=docker/dockerfile:1.7
# Fieldday: one image for every role (docker/entrypoint.sh web|worker|scheduler|migrate).
# Multi-stage: assets are built with Node, Python wheels in a builder; the runtime stage has
# neither compilers nor Node, runs as an unprivileged user, and holds only runtime requirements.
# Base images are pinned to exact versions; the pipeline (.github/workflows/deploy.yml) builds
# with --pull so patch rebuilds pick up security fixes for these exact tags.

ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm
ARG NODE_IMAGE=node:20.20.2-bookworm-slim

# ---- front-end assets (npm, content-hashed into app/static/dist) --------------------------
FROM ${NODE_IMAGE} AS assets
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY scripts/build-assets.mjs scripts/
COPY app/static/src app/static/src
RUN npm run -s build

# ---- Python dependencies into a venv -----------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY requirements.txt .
# Runtime part only: everything above "# Test and dev", minus the Bicep grammar (tests only).
RUN sed '/^# Test and dev/,$d' requirements.txt | grep -v '^tree-sitter' > requirements-runtime.txt \
 && python -m venv /opt/venv \
 && /opt/venv/bin/pip install -r requirements-runtime.txt

# ---- runtime ------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
# postgresql-client: psql for scripts/db_roles.sh in the migration job's bootstrap step.
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 fieldday \
 && useradd --system --uid 10001 --gid fieldday --home-dir /app --shell /usr/sbin/nologin fieldday
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FIELDDAY_ENV=production \
    FLASK_APP=wsgi.py \
    LOG_FORMAT=json \
    PORT=8000
WORKDIR /app
COPY --from=builder /opt/venv /opt/venv
COPY --chown=root:root wsgi.py ./
COPY --chown=root:root app app
COPY --chown=root:root tenants tenants
COPY --chown=root:root migrations migrations
COPY --chown=root:root scripts/__init__.py scripts/db_roles.sh scripts/db_roles.sql scripts/
COPY --chown=root:root docker docker
COPY --from=assets --chown=root:root /src/app/static/dist app/static/dist
# Code is owned by root and read-only for the app user; nothing in the image is writable by it.
USER 10001:10001
EXPOSE 8000
# Liveness for plain `docker run`; Container Apps uses its own probes on /healthz and /readyz.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
  CMD python -c "import urllib.request,os; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT','8000'), timeout=4)"
STOPSIGNAL SIGTERM
ENTRYPOINT ["/app/docker/entrypoint.sh"]
CMD ["web"]
