"""Stripe webhook acknowledgement on PostgreSQL behind gunicorn (3 workers): latency and
throughput of signed deliveries (verify the signature on the raw body, store once by event
id, queue processing after commit), of repeat deliveries, and of forged ones.

Sizes: BENCH_WEBHOOK_EVENTS (default 3,000), BENCH_WEBHOOK_CLIENTS (default 8).
Run: ``make bench BENCH=webhooks``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

from benchdb import bench_database, describe, start_gunicorn

EVENTS = int(os.environ.get("BENCH_WEBHOOK_EVENTS", 3_000))
CLIENTS = int(os.environ.get("BENCH_WEBHOOK_CLIENTS", 8))
SECRET = "whsec_bench_0123456789abcdef"
ROOT = Path(__file__).resolve().parent.parent
URL = "/api/v1/billing/stripe/webhook/"


def _deliver(base: str, deliveries: list[tuple[bytes, str]]) -> tuple[list[float], float, dict[int, int]]:
    """POST every (body, signature) from CLIENTS concurrent keep-alive clients."""
    import httpx

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    queue = list(deliveries)

    def client() -> None:
        with httpx.Client(base_url=base, timeout=30) as http:
            while True:
                with lock:
                    if not queue:
                        return
                    body, header = queue.pop()
                started = time.perf_counter()
                response = http.post(
                    URL,
                    content=body,
                    headers={"Stripe-Signature": header, "Content-Type": "application/json"},
                )
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    latencies.append(elapsed)
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, time.perf_counter() - started, statuses


def _events(n: int) -> list[dict]:
    sys.path.insert(0, str(ROOT))
    from tests.fakes.stripe_server import make_event

    return [
        make_event(
            "invoice.created",
            {
                "id": f"in_bench_{i}",
                "object": "invoice",
                "customer": f"cus_bench_{i % 97}",
                "amount_due": 4_900,
            },
        )
        for i in range(n)
    ]


def main() -> None:
    with bench_database() as db_name:
        from django.db import connection

        from billing.stripe.models import StripeWebhookEvent, WebhookRejection
        from tests.fakes.stripe_server import signed_webhook
        from trans_bot.celery import app

        print(f"database: {connection.vendor} {db_name}; {CLIENTS} clients, gunicorn -w 3")
        proc, base = start_gunicorn(db_name, env={"STRIPE_WEBHOOK_SECRET": SECRET})
        try:
            events = _events(EVENTS)
            _deliver(base, [signed_webhook(e, SECRET) for e in _events(100)])  # warm-up, not measured

            signed = [signed_webhook(e, SECRET) for e in events]
            lat, wall, statuses = _deliver(base, signed)
            print(f"new events:      {describe(lat)}; {len(lat) / wall:,.0f} req/s; statuses {statuses}")

            lat, wall, statuses = _deliver(base, signed)
            print(f"repeat delivery: {describe(lat)}; {len(lat) / wall:,.0f} req/s; statuses {statuses}")

            forged = [(body[:-2] + b" }", header) for body, header in signed[: max(EVENTS // 3, 1)]]
            lat, wall, statuses = _deliver(base, forged)
            print(f"forged (400):    {describe(lat)}; {len(lat) / wall:,.0f} req/s; statuses {statuses}")

            stored = StripeWebhookEvent.objects.filter(stripe_id__in=[e["id"] for e in events]).count()
            rejected = sum(WebhookRejection.objects.values_list("count", flat=True))
            print(f"stored {stored} of {EVENTS} events (each delivered twice); {rejected} rejections counted")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            app.control.purge()  # processing messages for the throwaway database
