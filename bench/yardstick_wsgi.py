"""The yardstick server: a plain WSGI app on psycopg, no framework, served by the same
gunicorn the same way as the back office (``benchdb.start_gunicorn(app="yardstick_wsgi:app")``).
Each route does the least work the project's endpoint must do, so the project's figure
over this one is what Django, DRF and our code cost on top.

    GET  /healthz   200
    GET  /summary   API key (by its prefix) -> the company's counters for the current period:
                    one indexed query
    POST /check     API key -> the limit and the counter of one feature: one indexed query
    POST /webhook   verify the Stripe-Signature HMAC on the raw body, store the event once
                    (INSERT … ON CONFLICT into ``bench_webhook``, made by the bench with the
                    same columns and indexes as billing_stripewebhookevent), queue a message on Redis when new

The key is looked up by its prefix and not hashed: the yardstick is the read, not the
key check (the project's key check is part of what it costs).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from typing import Any

import psycopg

_conn: psycopg.Connection[Any] | None = None
_redis: Any = None

SUMMARY_SQL = """
    SELECT f.code, c.used FROM billing_companyapikey k
    JOIN usage_usagecounter c ON c.company_id = k.company_id
    JOIN billing_feature f ON f.id = c.feature_id
    WHERE k.prefix = %s AND NOT k.revoked AND c.period_start <= now() AND c.period_end > now()
"""
CHECK_SQL = """
    SELECT l.included, l.mode, coalesce(c.used, 0) FROM billing_companyapikey k
    JOIN billing_company co ON co.id = k.company_id
    JOIN billing_feature f ON f.code = %s
    JOIN billing_tierlimit l ON l.tier_id = co.tier_id AND l.feature_id = f.id
    LEFT JOIN usage_usagecounter c ON c.company_id = co.id AND c.feature_id = f.id
         AND c.period_start <= now() AND c.period_end > now()
    WHERE k.prefix = %s AND NOT k.revoked
"""


def _db() -> psycopg.Connection[Any]:
    global _conn
    if _conn is None or _conn.closed:
        _conn = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
    return _conn


def _reply(start_response: Any, status: str, body: Any) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def _prefix(environ: dict[str, Any]) -> str:
    auth = environ.get("HTTP_AUTHORIZATION", "")
    return auth.removeprefix("Api-Key ").split(".", 1)[0]


def _verify(body: bytes, header: str, secret: str) -> bool:
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", "")) and abs(time.time() - timestamp) <= 300


def _webhook(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    global _redis
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length)
    if not _verify(body, environ.get("HTTP_STRIPE_SIGNATURE", ""), os.environ["YARDSTICK_WEBHOOK_SECRET"]):
        return _reply(start_response, "400 Bad Request", {"error": "bad signature"})
    event = json.loads(body)
    with _db().cursor() as cur:
        cur.execute(
            """INSERT INTO bench_webhook (stripe_id, type, created, livemode, payload, status, attempts, deliveries,
                    error, outcome, received_at, last_delivery_at)
                VALUES (%s, %s, %s, %s, %s, 'pending', 0, 1, '', '', now(), now())
                ON CONFLICT (stripe_id) DO UPDATE SET deliveries = bench_webhook.deliveries + 1,
                    last_delivery_at = now()
                RETURNING xmax = 0""",
            [event["id"], event["type"], event["created"], event.get("livemode", False), body.decode()],
        )
        row = cur.fetchone()
        new = bool(row and row[0])
    if new:
        if _redis is None:
            import redis

            _redis = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"])
        _redis.rpush(os.environ["YARDSTICK_QUEUE"], event["id"])
    return _reply(start_response, "200 OK", {"received": True, "duplicate": not new})


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
    if path == "/healthz":
        return _reply(start_response, "200 OK", {"status": "ok"})
    if path == "/summary" and method == "GET":
        with _db().cursor() as cur:
            cur.execute(SUMMARY_SQL, [_prefix(environ)])
            rows = cur.fetchall()
        if not rows:
            return _reply(start_response, "404 Not Found", {"error": "no counters for this key"})
        return _reply(start_response, "200 OK", {"features": [{"feature": f, "used": u} for f, u in rows]})
    if path == "/check" and method == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        data = json.loads(environ["wsgi.input"].read(length) or b"{}")
        with _db().cursor() as cur:
            cur.execute(CHECK_SQL, [data.get("feature"), _prefix(environ)])
            row = cur.fetchone()
        if row is None:
            return _reply(start_response, "404 Not Found", {"error": "no such key or feature"})
        included, mode, used = row
        quantity = int(data.get("quantity", 1))
        allowed = included is None or mode != "hard" or used + quantity <= included
        return _reply(start_response, "200 OK", {"allowed": allowed, "used": used, "included": included})
    if path == "/webhook" and method == "POST":
        return _webhook(environ, start_response)
    return _reply(start_response, "404 Not Found", {"error": f"no route {method} {path}"})
