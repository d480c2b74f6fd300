#!/usr/bin/env bash
# The whole back office on one machine: web, Celery worker and beat (plus the stand-in
# regions), on embedded defaults unless DATABASE_URL / CELERY_BROKER_URL / CACHE_URL say
# otherwise. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PORT=${PORT:-8000}
# Links in alerts and the printed curl examples point at this server.
export SITE_URL=${SITE_URL:-http://127.0.0.1:${PORT}}
mkdir -p var

$PY manage.py migrate --noinput
$PY manage.py demo_data

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

# Two stand-in regions (regions/demo.py registers them): primary active, secondary standby.
$PY manage.py fake_region --port "${DEMO_PRIMARY_REGION_PORT:-8101}" --name primary >var/region-primary.log 2>&1 &
pids+=($!)
$PY manage.py fake_region --port "${DEMO_SECONDARY_REGION_PORT:-8102}" --name secondary >var/region-secondary.log 2>&1 &
pids+=($!)
.venv/bin/celery -A trans_bot worker --loglevel=INFO --concurrency=2 >var/worker.log 2>&1 &
pids+=($!)
.venv/bin/celery -A trans_bot beat --loglevel=INFO >var/beat.log 2>&1 &
pids+=($!)

cat <<MSG

  Trans Bot back office is starting on http://127.0.0.1:${PORT}/
    admin:    http://127.0.0.1:${PORT}/admin/   (login printed above)
    account:  http://127.0.0.1:${PORT}/account/   (customer login: nina / nina-demo, Near Limit Carriers)
    pricing:  http://127.0.0.1:${PORT}/pricing/   (the public calculator)
    API docs: http://127.0.0.1:${PORT}/api/docs/
    health:   http://127.0.0.1:${PORT}/healthz
    regions:  http://127.0.0.1:${PORT}/admin/regions/region/   (fake regions on :8101, :8102;
              curl -XPOST 127.0.0.1:8101/_control/fail  takes the primary down)
  worker and beat log to var/worker.log and var/beat.log. Ctrl-C stops everything.

MSG
$PY manage.py runserver "127.0.0.1:${PORT}" --noreload
