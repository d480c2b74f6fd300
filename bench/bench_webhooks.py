"""Stripe webhook acknowledgement through gunicorn (PostgreSQL, Redis broker):
signed new deliveries (verify the signature on the raw body, store once by event id, queue
processing after commit), repeat deliveries, and forged ones. Goal: new event p99 ≤ 50 ms.
Sizes: BENCH_WEBHOOK_EVENTS (per turn, default 1,000), BENCH_WEBHOOK_ROUNDS (default 3),
BENCH_WEBHOOK_CLIENTS (default 8)."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

from benchdb import bench_database, check_status, gunicorn, http_client, percentile, size, take_turns
from table import BenchFailure, Row

BASELINE = (
    "The yardstick server (`bench/yardstick_wsgi.py`, same gunicorn, same BENCH_WORKERS) answers "
    "`POST /webhook` "
    "with the least the project must do: verify the `Stripe-Signature` HMAC-SHA256 on the raw body, "
    "`INSERT … ON CONFLICT (stripe_id)` into a table made `LIKE billing_stripewebhookevent INCLUDING ALL` "
    "(same indexes), and RPUSH the id to Redis when new. The same signed events (different ids each "
    "side) go to both from BENCH_WEBHOOK_CLIENTS Python threads with keep-alive, in turns of "
    "BENCH_WEBHOOK_EVENTS; then the same deliveries again (repeats) and forged ones (400 expected). "
    "Any other status fails the run."
)
EVENTS = size("BENCH_WEBHOOK_EVENTS", 1000)
ROUNDS = size("BENCH_WEBHOOK_ROUNDS", 3)
CLIENTS = size("BENCH_WEBHOOK_CLIENTS", 8)
SECRET = "whsec_bench_0123456789abcdef"
QUEUE = "bench:yardstick:webhooks"
ROOT = Path(__file__).resolve().parent.parent
P99_MS = 50.0


class Turn:
    def __init__(self, latencies: list[float], seconds: float) -> None:
        self.latencies, self.seconds = latencies, seconds


def _deliver(url: str, deliveries: list[tuple[bytes, str]], expected: int) -> Turn:
    """POST every (body, signature) from CLIENTS concurrent keep-alive clients."""
    latencies: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    queue = list(deliveries)

    def client() -> None:
        try:
            with http_client() as http:
                while True:
                    with lock:
                        if not queue:
                            return
                        body, header = queue.pop()
                    started = time.perf_counter()
                    response = http.post(url, content=body,
                                         headers={"Stripe-Signature": header, "Content-Type": "application/json"})
                    elapsed = (time.perf_counter() - started) * 1000
                    check_status(response, (expected,))
                    with lock:
                        latencies.append(elapsed)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0] if isinstance(errors[0], BenchFailure) else BenchFailure(f"webhook client: {errors[0]!r}")
    return Turn(latencies, time.perf_counter() - started)


def _events(prefix: str, n: int) -> list[dict]:
    from tests.fakes.stripe_server import make_event

    return [
        make_event("invoice.created", {"id": f"in_{prefix}_{i}", "object": "invoice",
                                       "customer": f"cus_bench_{i % 97}", "amount_due": 4_900})
        for i in range(n)
    ]


def _text(turns: list[Turn]) -> tuple[str, float, float]:
    lat = [x for t in turns for x in t.latencies]
    rate = len(lat) / sum(t.seconds for t in turns)
    p99 = percentile(lat, 99)
    return f"{rate:,.0f} req/s, p50 {percentile(lat, 50):.1f} ms, p99 {p99:.1f} ms", rate, p99


def main() -> list[Row]:
    with bench_database() as db_name:
        import redis
        from django.conf import settings
        from django.db import connection

        from billing.stripe.models import StripeWebhookEvent
        from tests.fakes.stripe_server import signed_webhook
        from trans_bot.celery import app

        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE bench_webhook (LIKE billing_stripewebhookevent INCLUDING ALL)")
        broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
        env = {"STRIPE_WEBHOOK_SECRET": SECRET, "YARDSTICK_WEBHOOK_SECRET": SECRET,
               "YARDSTICK_QUEUE": QUEUE}
        try:
            with contextlib.ExitStack() as stack:
                urls = {}
                for side, app_name, path in (("project", "trans_bot.wsgi", "/api/v1/billing/stripe/webhook/"),
                                             ("baseline", "yardstick_wsgi:app", "/webhook")):
                    urls[side] = stack.enter_context(gunicorn(db_name, env=env, app=app_name)) + path
                    # Warm-up, not measured; a misconfigured server fails here.
                    _deliver(urls[side], [signed_webhook(e, SECRET) for e in _events(f"warm_{side}", 50)], 200)
                events = {side: [_events(f"{side}_{r}", EVENTS) for r in range(ROUNDS)] for side in urls}
                signed = {side: [[signed_webhook(e, SECRET) for e in batch] for batch in events[side]] for side in urls}

                def turn(side: str, kind: str):
                    def run(r: int) -> Turn:
                        deliveries = signed[side][r]
                        if kind == "forged":
                            forged = deliveries[: EVENTS // 3 or 1]
                            deliveries = [(body[:-2] + b" }", header) for body, header in forged]
                        return _deliver(urls[side], deliveries, 400 if kind == "forged" else 200)
                    return run

                got = {}
                for kind in ("new", "repeat", "forged"):
                    got[kind] = take_turns(ROUNDS, project=turn("project", kind), baseline=turn("baseline", kind))

                ids = [e["id"] for batch in events["project"] for e in batch]
                stored = StripeWebhookEvent.objects.filter(stripe_id__in=ids).count()
                if stored != EVENTS * ROUNDS:
                    raise BenchFailure(f"stored {stored} webhook events, expected {EVENTS * ROUNDS}")
        finally:
            app.control.purge()  # processing messages for the throwaway database
            broker.delete(QUEUE)

    rows = []
    for kind, label, expected in (("new", "new event acknowledged", "200"),
                                  ("repeat", "repeat delivery", "200 duplicate"),
                                  ("forged", "forged signature", "400")):
        value, rate, p99 = _text(got[kind]["project"])
        base, base_rate, _ = _text(got[kind]["baseline"])
        goal = kind == "new"
        rows.append(Row("webhooks", f"{label} ({expected}), {CLIENTS} clients", value, base, rate / base_rate,
                        f"p99 ≤ {P99_MS:.0f} ms" if goal else "report", p99 <= P99_MS if goal else None))
    return rows
