#!/usr/bin/env bash
# The demo: installs what is missing, starts PostgreSQL (Debian's cluster), Redis and an S3
# server (SeaweedFS), migrates, loads demo data and serves the app with an RQ worker.
# Data lives in var/ (S3, Redis) and Debian's cluster (PostgreSQL); re-running keeps it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
PORT="${PORT:-5000}"
mkdir -p var/s3 var/redis var/log

# PostgreSQL 15: Debian's cluster, started as the postgres user (it refuses root).
if ! pg_lsclusters -h 2>/dev/null | grep -q '^15 *main'; then
  pg_createcluster 15 main >/dev/null
fi
pg_ctlcluster 15 main start 2>/dev/null || true
PGPORT=$(pg_lsclusters -h | awk '$1=="15" && $2=="main" {print $3}')
for _ in $(seq 1 30); do runuser -u postgres -- pg_isready -q -p "$PGPORT" && break; sleep 0.5; done
runuser -u postgres -- bash scripts/db_roles.sh -p "$PGPORT" >/dev/null

# Redis
if ! redis-cli -p 6379 ping >/dev/null 2>&1; then
  redis-server --port 6379 --bind 127.0.0.1 --dir "$PWD/var/redis" --daemonize yes --logfile "$PWD/var/log/redis.log"
fi

# S3 (SeaweedFS, with credentials and explicit ports)
if ! (echo > /dev/tcp/127.0.0.1/8333) 2>/dev/null; then
  cat > var/s3-identities.json <<JSON
{"identities":[{"name":"fieldday","credentials":[{"accessKey":"fieldday","secretKey":"fieldday-secret"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
  nohup weed server -dir="$PWD/var/s3" -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3 -s3.config="$PWD/var/s3-identities.json" \
    -s3.port=8333 -s3.port.grpc=18333 -s3.port.iceberg=0 -s3.port.lance=0 -master.port=9333 -master.port.grpc=19333 \
    -volume.port=8080 -volume.port.grpc=18080 -filer.port=8888 -filer.port.grpc=18888 -metricsPort=9324 \
    -master.telemetry=false -iam=false -volume.max=50 -master.volumeSizeLimitMB=256 > var/log/s3.log 2>&1 &
fi

# Stripe: without real keys the demo uses the project's local stand-in (hosted checkout and
# onboarding pages, signed webhooks to this app), so the booking site's deposit step works offline.
if [ -z "${STRIPE_SECRET_KEY:-}" ]; then
  STRIPE_PORT="${STRIPE_PORT:-12111}"
  export STRIPE_SECRET_KEY=sk_test_standin STRIPE_CONNECT_WEBHOOK_SECRET=whsec_standin
  export STRIPE_BILLING_WEBHOOK_SECRET=whsec_billing_standin
  export STRIPE_API_BASE="http://127.0.0.1:$STRIPE_PORT"
  if ! (echo > "/dev/tcp/127.0.0.1/$STRIPE_PORT") 2>/dev/null; then
    nohup python -m scripts.standins.stripe_standin --port "$STRIPE_PORT" --api-key sk_test_standin \
      --secret whsec_standin --webhook-url "http://127.0.0.1:$PORT/webhooks/stripe/connect" \
      --billing-webhook-url "http://127.0.0.1:$PORT/webhooks/stripe/billing" --billing-secret whsec_billing_standin \
      --webhook-host "app.localhost:$PORT" --state "$PWD/var/stripe-standin.json" > var/log/stripe.log 2>&1 &
    for _ in $(seq 1 30); do (echo > "/dev/tcp/127.0.0.1/$STRIPE_PORT") 2>/dev/null && break; sleep 0.2; done
  fi
fi

# Twilio: without a real account the demo texts through the project's stand-in. It owns one number
# per demo business (friendly name fieldday:<subdomain>, which is how the platform assigns numbers;
# `flask demo load` gives each business its number), posts signed inbound webhooks and delivery
# callbacks to this app, and is a fake phone at /_standin/phone: read the texts, reply, send STOP.
if [ -z "${TWILIO_ACCOUNT_SID:-}" ]; then
  TWILIO_PORT="${TWILIO_PORT:-12112}"
  export TWILIO_ACCOUNT_SID=AC00000000000000000000000000000000 TWILIO_AUTH_TOKEN=standin_token
  export TWILIO_API_BASE="http://127.0.0.1:$TWILIO_PORT"
  if ! (echo > "/dev/tcp/127.0.0.1/$TWILIO_PORT") 2>/dev/null; then
    nohup python -m scripts.standins.twilio_standin --port "$TWILIO_PORT" --account-sid "$TWILIO_ACCOUNT_SID" \
      --auth-token "$TWILIO_AUTH_TOKEN" --number "+15125550180=fieldday:acme" --number "+15125550190=fieldday:bravo" \
      --webhook-base "http://127.0.0.1:$PORT" --webhook-host "app.localhost:$PORT" --auto-status sent,delivered \
      --state "$PWD/var/twilio-standin.json" > var/log/twilio.log 2>&1 &
    for _ in $(seq 1 30); do (echo > "/dev/tcp/127.0.0.1/$TWILIO_PORT") 2>/dev/null && break; sleep 0.2; done
  fi
fi

# Google Calendar: without real OAuth credentials the demo uses the project's stand-in (consent page;
# calendars at http://127.0.0.1:12113/ to add, move and delete events; pushes go to this app).
if [ -z "${GOOGLE_CLIENT_ID:-}" ]; then
  GOOGLE_PORT="${GOOGLE_PORT:-12113}"
  export GOOGLE_CLIENT_ID=fieldday-demo.apps.googleusercontent.com GOOGLE_CLIENT_SECRET=standin-secret
  export GOOGLE_API_BASE="http://127.0.0.1:$GOOGLE_PORT"
  if ! (echo > "/dev/tcp/127.0.0.1/$GOOGLE_PORT") 2>/dev/null; then
    nohup python -m scripts.standins.google_standin --port "$GOOGLE_PORT" --client-id "$GOOGLE_CLIENT_ID" \
      --client-secret "$GOOGLE_CLIENT_SECRET" --webhook-base "http://127.0.0.1:$PORT" --auto-push \
      --state "$PWD/var/google-standin.json" > var/log/google.log 2>&1 &
    for _ in $(seq 1 30); do (echo > "/dev/tcp/127.0.0.1/$GOOGLE_PORT") 2>/dev/null && break; sleep 0.2; done
  fi
fi

export FIELDDAY_ENV=development FLASK_APP=wsgi.py PUBLIC_PORT="$PORT"
export DATABASE_URL="postgresql+psycopg://fieldday_app:fieldday_app@127.0.0.1:$PGPORT/fieldday"
export DATABASE_OWNER_URL="postgresql+psycopg://fieldday_owner:fieldday_owner@127.0.0.1:$PGPORT/fieldday"
export REDIS_URL="redis://127.0.0.1:6379/0" S3_ENDPOINT_URL="http://127.0.0.1:8333"

flask db upgrade
for _ in $(seq 1 60); do flask storage init >/dev/null 2>&1 && break; sleep 1; done
flask storage init
flask demo load
flask billing prices || echo "Stripe prices not created (is Stripe reachable?): Plan & usage will not sell Pro or Teams"  # kept if they exist

flask worker > var/log/worker.log 2>&1 &
WORKER=$!
flask cron > var/log/cron.log 2>&1 &
CRON=$!
trap 'kill $WORKER $CRON 2>/dev/null || true' EXIT

echo
echo "Fieldday is running (Ctrl-C to stop). Worker log: var/log/worker.log"
[ -n "${STRIPE_API_BASE:-}" ] && echo "Stripe: local stand-in at $STRIPE_API_BASE (test cards: 4242 4242 4242 4242; 4000 0025 0000 3155 asks for authentication later)"
[ -n "${GOOGLE_API_BASE:-}" ] && echo "Google Calendar: local stand-in at $GOOGLE_API_BASE/ (Integrations → Connect Google Calendar, then add or move events there)"
[ -n "${TWILIO_API_BASE:-}" ] && echo "Texts: local Twilio stand-in; the customer's phone is $TWILIO_API_BASE/_standin/phone (book with a mobile number, then open it there to read the confirmation, reply or text STOP)"
flask demo logins
echo
# Not exec: this shell stays to stop the worker and cron (the EXIT trap) when the server stops.
gunicorn --bind "0.0.0.0:$PORT" --workers 2 --threads 4 wsgi:app  # the app logs each request itself, with tokens redacted
