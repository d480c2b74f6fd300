#!/usr/bin/env bash
# The whole back office on one machine: web, Celery worker and beat (plus the stand-in
# regions), on embedded defaults unless DATABASE_URL / CELERY_BROKER_URL / CACHE_URL say
# otherwise. Ctrl-C stops everything.
#   PORT                         the back office (default 8000)
#   DEMO_PRIMARY_REGION_PORT     the stand-in primary region (default 8101)
#   DEMO_SECONDARY_REGION_PORT   the stand-in secondary region (default 8102)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export PORT=${PORT:-8000}
export DEMO_PRIMARY_REGION_PORT=${DEMO_PRIMARY_REGION_PORT:-8101}
export DEMO_SECONDARY_REGION_PORT=${DEMO_SECONDARY_REGION_PORT:-8102}
# Links in alerts and the printed curl examples point at this server.
export SITE_URL=${SITE_URL:-http://127.0.0.1:${PORT}}
LOGS=${VAR_DIR:-var}
mkdir -p "$LOGS"

$PY manage.py migrate --noinput
$PY manage.py demo_data

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

# Two stand-in regions (regions/demo.py registers them): primary active, secondary standby.
$PY manage.py fake_region --port "$DEMO_PRIMARY_REGION_PORT" --name primary >"$LOGS/region-primary.log" 2>&1 &
pids+=($!)
$PY manage.py fake_region --port "$DEMO_SECONDARY_REGION_PORT" --name secondary >"$LOGS/region-secondary.log" 2>&1 &
pids+=($!)
.venv/bin/celery -A trans_bot worker --loglevel=INFO --concurrency=2 >"$LOGS/worker.log" 2>&1 &
pids+=($!)
.venv/bin/celery -A trans_bot beat --loglevel=INFO >"$LOGS/beat.log" 2>&1 &
pids+=($!)

cat <<MSG

  Trans Bot back office is starting on http://127.0.0.1:${PORT}/
    admin:    http://127.0.0.1:${PORT}/admin/   (login printed above)
    account:  http://127.0.0.1:${PORT}/account/   (customer login: nina / nina-demo, Near Limit Carriers)
    pricing:  http://127.0.0.1:${PORT}/pricing/   (the public calculator)
    API docs: http://127.0.0.1:${PORT}/api/docs/
    health:   http://127.0.0.1:${PORT}/healthz
    regions:  http://127.0.0.1:${PORT}/admin/regions/region/   (stand-in regions on :${DEMO_PRIMARY_REGION_PORT}
              and :${DEMO_SECONDARY_REGION_PORT}; curl -XPOST 127.0.0.1:${DEMO_PRIMARY_REGION_PORT}/_control/fail
              takes the primary down)
  Ports: PORT=${PORT} DEMO_PRIMARY_REGION_PORT=${DEMO_PRIMARY_REGION_PORT} DEMO_SECONDARY_REGION_PORT=${DEMO_SECONDARY_REGION_PORT}
  (set them for make demo to move them). Worker and beat log to ${LOGS}/worker.log and ${LOGS}/beat.log.
  Ctrl-C stops everything.

MSG
$PY manage.py runserver "127.0.0.1:${PORT}" --noreload
