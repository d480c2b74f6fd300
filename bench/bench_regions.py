"""Regions benchmarks: probe-cycle fan-out, decision latency, routing middleware overhead.

make bench BENCH=regions TEST_DATABASE_URL=... TEST_REDIS_URL=...
"""

from __future__ import annotations

import statistics
import time

from benchdb import bench_database, describe

REGIONS = 50
DELAY = 0.2


def bench_probe_cycle() -> None:
    from regions.fake import FakeRegionServer
    from regions.gateways import ProbeTarget, probe_many

    servers = [FakeRegionServer(name=f"r{i}", delay=DELAY).start() for i in range(REGIONS)]
    try:
        targets = [ProbeTarget(key=i, url=f"{s.base_url}/healthz", timeout=2.0) for i, s in enumerate(servers)]
        probe_many(targets[:2])  # warm up the event loop machinery
        walls, ratios = [], []
        for _ in range(10):
            started = time.perf_counter()
            results = probe_many(targets)
            wall = (time.perf_counter() - started) * 1000
            assert all(r.ok for r in results), [r.error for r in results if not r.ok]
            walls.append(wall)
            ratios.append(wall / max(r.latency_ms for r in results))
    finally:
        for s in servers:
            s.stop()
    print(f"probe cycle, {REGIONS} regions answering after {DELAY * 1000:.0f} ms: {describe(walls)}")
    print(f"  ratio cycle / slowest single probe: median {statistics.median(ratios):.2f}, max {max(ratios):.2f}")


def bench_decision() -> None:
    from django.utils import timezone

    from regions.gate import gate_evaluate
    from regions.gateways import ProbeResult
    from regions.models import FailoverEvent, Region, RegionStatus
    from regions.selectors import policy_get
    from regions.services import region_record_probe

    policy = policy_get()
    policy.multi_region_enabled = True
    policy.cooldown_seconds = 0
    policy.save()
    a = Region.objects.create(name="A", slug="a", base_url="http://127.0.0.1:9", order=0)
    b = Region.objects.create(name="B", slug="b", base_url="http://127.0.0.1:9", order=1)
    samples = []
    for i in range(60):
        active, standby = (a, b) if i % 2 == 0 else (b, a)
        Region.objects.filter(pk=active.pk).update(is_active=False)
        Region.objects.filter(pk=standby.pk).update(
            status=RegionStatus.HEALTHY, consecutive_failures=0, consecutive_successes=5, is_active=False
        )
        Region.objects.filter(pk=active.pk).update(
            is_active=True,
            status=RegionStatus.HEALTHY,
            consecutive_failures=policy.failure_threshold - 1,
            consecutive_successes=0,
            failing_since=timezone.now(),
        )
        active.refresh_from_db()
        failed = ProbeResult(key=active.pk, ok=False, status_code=503, latency_ms=3.0, error="unexpected status 503")
        started = time.perf_counter()
        region_record_probe(region=active, result=failed, policy=policy_get(), now=timezone.now())
        outcome = gate_evaluate()
        samples.append((time.perf_counter() - started) * 1000)
        assert outcome.action == "failover", outcome
    print(
        f"threshold-th failed probe -> active region switched (record + gate + event, audit, alert, task): "
        f"{describe(samples)}"
    )
    assert FailoverEvent.objects.count() == 60


def bench_middleware() -> None:
    from django.conf import settings
    from django.http import HttpResponse
    from django.test import RequestFactory

    from regions import routing
    from regions.middleware import RegionRoutingMiddleware

    routing.publish()
    settings.REGION_NAME = "b"  # a standby: writes are redirected, reads served

    def view(request):
        return HttpResponse("ok")

    wrapped = RegionRoutingMiddleware(view)
    factory = RequestFactory()
    requests = [
        factory.get("/api/v1/regions/") if i % 2 else factory.post("/api/v1/usage/events/") for i in range(2000)
    ]

    def per_request_us(handler, rounds=5):
        best = float("inf")
        for _ in range(rounds):
            started = time.perf_counter()
            for request in requests:
                handler(request)
            best = min(best, (time.perf_counter() - started) / len(requests) * 1e6)
        return best

    without = per_request_us(view)
    with_it = per_request_us(wrapped)
    print(
        f"routing middleware: {with_it:.2f} µs/request with it, {without:.2f} µs without "
        f"(overhead {with_it - without:.2f} µs; half POSTs answered 307, half GETs served)"
    )


def main() -> None:
    bench_probe_cycle()
    with bench_database():
        bench_decision()
        bench_middleware()
