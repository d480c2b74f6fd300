"""The single-event ingest yardstick: a plain WSGI app on psycopg, no framework, served by
the same gunicorn the same way as the back office (``benchdb.start_gunicorn(app="bare_wsgi:app")``).

``POST /api/v1/usage/events/`` with ``{"events": [{"feature", "idempotency_key", ...}]}``:
the least the project's ingest must do for one event, in one autocommit statement: insert
the event into ``usage_usageevent`` (same columns, so the same indexes, foreign keys and
partitions), skip a known key, and add it to its counter (``INSERT … ON CONFLICT DO
UPDATE``). It checks no key (``BARE_COMPANY_ID``, ``BARE_API_KEY_ID`` name who sends),
looks up the feature in a map read at start and counts in the period given at start
(``BARE_PERIOD_START``/``BARE_PERIOD_END``): what the project spends on top of this is
Django, DRF, authentication, throttling and validation.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from typing import Any

import psycopg

INGEST_SQL = """
WITH ins AS (
    INSERT INTO usage_usageevent (company_id, feature_id, quantity, idempotency_key, fingerprint,
                                  occurred_at, received_at, period_start, api_key_id)
    VALUES (%(company)s, %(feature)s, %(quantity)s, %(key)s, %(fingerprint)s, %(now)s, %(now)s, %(start)s,
            %(api_key)s)
    ON CONFLICT DO NOTHING
    RETURNING feature_id, quantity
)
INSERT INTO usage_usagecounter (company_id, feature_id, period_start, period_end, used, updated_at)
SELECT %(company)s, feature_id, %(start)s, %(end)s, quantity, %(now)s FROM ins
ON CONFLICT (company_id, feature_id, period_start)
DO UPDATE SET used = usage_usagecounter.used + EXCLUDED.used, updated_at = EXCLUDED.updated_at
RETURNING used
"""

_conn: psycopg.Connection[Any] | None = None
_features: dict[str, int] = {}


def _db() -> psycopg.Connection[Any]:
    global _conn
    if _conn is None or _conn.closed:
        _conn = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
        with _conn.cursor() as cur:
            cur.execute("SELECT code, id FROM billing_feature")
            _features.update(dict(cur.fetchall()))
    return _conn


def _reply(start_response: Any, status: str, body: Any) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
    if path == "/healthz":
        return _reply(start_response, "200 OK", {"status": "ok"})
    if path != "/api/v1/usage/events/" or method != "POST":
        return _reply(start_response, "404 Not Found", {"error": f"no route {method} {path}"})
    length = int(environ.get("CONTENT_LENGTH") or 0)
    try:
        event = json.loads(environ["wsgi.input"].read(length))["events"][0]
        key, quantity = str(event["idempotency_key"]), int(event.get("quantity", 1))
        conn = _db()
        feature = _features[event["feature"]]
    except (ValueError, KeyError, IndexError, TypeError):
        return _reply(start_response, "400 Bad Request", {"error": "bad event"})
    fingerprint = hashlib.blake2b(f"{event['feature']}\x1f{quantity}\x1f".encode(), digest_size=16).hexdigest()
    with conn.cursor() as cur:
        cur.execute(INGEST_SQL, {
            "company": int(os.environ["BARE_COMPANY_ID"]), "api_key": os.environ["BARE_API_KEY_ID"],
            "feature": feature, "quantity": quantity, "key": key, "fingerprint": fingerprint,
            "now": datetime.now(UTC), "start": os.environ["BARE_PERIOD_START"], "end": os.environ["BARE_PERIOD_END"],
        })
        accepted = cur.fetchone() is not None
    return _reply(start_response, "200 OK", {
        "accepted": int(accepted), "duplicates": int(not accepted), "duplicate_keys": [] if accepted else [key],
    })
