"""Regions: the probe cycle's fan-out, the failover decision, the routing middleware.
Leaves no routing state behind (the decision publishes one; it is deleted at the end).
Sizes: BENCH_REGIONS (default 50), BENCH_REGIONS_CYCLES (default 10),
BENCH_REGIONS_FAILOVERS (default 60), BENCH_REGIONS_REQUESTS (default 2,000)."""

from __future__ import annotations

import time

from benchdb import bench_database, percentile, size, take_turns
from table import BenchFailure, Row

BASELINE = (
    "Probe cycle: one probe of one region through the same gateway (`probe_many` of one target), "
    "alternating with the cycle over all regions, each fake region answering after 200 ms — the "
    "cycle can be no faster than its slowest probe; the bench process freezes its start-up objects "
    "out of the garbage collector's sight first, as the worker that runs the cycle does. "
    "Failover decision: the same row changes as bare "
    "SQL in one transaction (update both regions, insert a failover event and an audit row into "
    "tables made LIKE theirs, same indexes), "
    "alternating with `region_record_probe` + `gate_evaluate` doing the real failover (event, audit "
    "record, alert, ops task, routing state published). Middleware: the same requests through the "
    "bare view, alternating with the view wrapped in `RegionRoutingMiddleware` (half POSTs answered "
    "307 by a standby, half GETs served)."
)
REGIONS = size("BENCH_REGIONS", 50)
CYCLES = size("BENCH_REGIONS_CYCLES", 10)
FAILOVERS = size("BENCH_REGIONS_FAILOVERS", 60)
REQUESTS = size("BENCH_REGIONS_REQUESTS", 2000)
DELAY = 0.2


def bench_probe_cycle() -> Row:
    from regions.fake import FakeRegionServer
    from regions.gateways import ProbeTarget, probe_many
    from trans_bot.celery import freeze_startup_objects

    servers = [FakeRegionServer(name=f"r{i}", delay=DELAY).start() for i in range(REGIONS)]
    try:
        targets = [ProbeTarget(key=i, url=f"{s.base_url}/healthz", timeout=2.0) for i, s in enumerate(servers)]
        probe_many(targets[:2])  # warm up the event loop machinery
        # The cycle runs in a Celery worker, which freezes what it loaded at start out of the
        # garbage collector's sight (trans_bot.celery); this process stands in for it.
        freeze_startup_objects()

        def timed(group):
            def run(r: int) -> float:
                started = time.perf_counter()
                results = probe_many(group)
                if not all(x.ok for x in results):
                    raise BenchFailure(f"probe failed: {[x.error for x in results if not x.ok][:3]}")
                return (time.perf_counter() - started) * 1000
            return run

        got = take_turns(CYCLES, cycle=timed(targets), single=timed(targets[:1]))
    finally:
        for s in servers:
            s.stop()
    p99, base = percentile(got["cycle"], 99), percentile(got["single"], 99)
    return Row("regions", f"probe cycle, {REGIONS} regions answering after {DELAY * 1000:.0f} ms",
               f"p50 {percentile(got['cycle'], 50):.0f} ms, p99 {p99:.0f} ms",
               f"one probe: p50 {percentile(got['single'], 50):.0f} ms, p99 {base:.0f} ms",
               p99 / base, "p99 ≤ 400 ms", p99 <= 400)


def bench_decision() -> Row:
    from django.db import connection, transaction
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
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_event (LIKE regions_failoverevent INCLUDING ALL)")
        cursor.execute("CREATE TABLE bench_audit (LIKE audit_auditlog INCLUDING ALL)")

    def project(i: int) -> float:
        active, standby = (a, b) if i % 2 == 0 else (b, a)
        Region.objects.filter(pk=active.pk).update(is_active=False)
        Region.objects.filter(pk=standby.pk).update(
            status=RegionStatus.HEALTHY, consecutive_failures=0, consecutive_successes=5, is_active=False)
        Region.objects.filter(pk=active.pk).update(
            is_active=True, status=RegionStatus.HEALTHY, consecutive_failures=policy.failure_threshold - 1,
            consecutive_successes=0, failing_since=timezone.now())
        active.refresh_from_db()
        failed = ProbeResult(key=active.pk, ok=False, status_code=503, latency_ms=3.0, error="unexpected status 503")
        started = time.perf_counter()
        region_record_probe(region=active, result=failed, policy=policy_get(), now=timezone.now())
        outcome = gate_evaluate()
        elapsed = (time.perf_counter() - started) * 1000
        if outcome.action != "failover":
            raise BenchFailure(f"failover expected, the gate said {outcome}")
        return elapsed

    def bare(i: int) -> float:
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("UPDATE regions_region SET is_active = (id = %s), consecutive_failures = 0 "
                           "WHERE id IN (%s, %s)", [b.pk if i % 2 == 0 else a.pk, a.pk, b.pk])
            cursor.execute("INSERT INTO bench_audit (seq, created_at, actor_type, actor_label, action, target_type, "
                           "target_id, target_repr, company_name, details, request_id, prev_hash, hash) VALUES "
                           "(%s, now(), 'system', 'bench', 'region.fail_over', 'region', '1', 'A', '', '{}', '', "
                           "repeat('0', 64), repeat('f', 64))", [i])
            cursor.execute("INSERT INTO bench_event (kind, reason, actor, forced, pinned, epoch, decided_at, "
                           "from_region_id, to_region_id) VALUES ('failover', 'bench', 'system', false, false, "
                           "%s, now(), %s, %s)", [i, a.pk, b.pk])
        return (time.perf_counter() - started) * 1000

    got = take_turns(FAILOVERS, project=project, bare=bare)
    if FailoverEvent.objects.count() != FAILOVERS:
        raise BenchFailure(f"{FailoverEvent.objects.count()} failover events for {FAILOVERS} failovers")
    p99, base = percentile(got["project"], 99), percentile(got["bare"], 99)
    return Row("regions", "failed probe → active region switched (event, audit, alert, task)",
               f"p50 {percentile(got['project'], 50):.1f} ms, p99 {p99:.1f} ms",
               f"bare SQL: p50 {percentile(got['bare'], 50):.1f} ms, p99 {base:.1f} ms",
               p99 / base, "p99 ≤ 100 ms", p99 <= 100)


def bench_middleware() -> Row:
    from django.conf import settings
    from django.http import HttpResponse
    from django.test import RequestFactory

    from regions import routing
    from regions.middleware import RegionRoutingMiddleware

    routing.publish()
    old_region = settings.REGION_NAME
    settings.REGION_NAME = "b"  # a standby: writes are redirected, reads served
    try:
        def view(request):
            return HttpResponse("ok")

        wrapped = RegionRoutingMiddleware(view)
        factory = RequestFactory()
        requests = [factory.get("/api/v1/regions/") if i % 2 else factory.post("/api/v1/usage/events/")
                    for i in range(REQUESTS)]
        statuses = {wrapped(r).status_code for r in requests[:2]}
        if statuses != {200, 307}:
            raise BenchFailure(f"the standby should serve GETs and redirect POSTs, got {statuses}")

        def per_request_us(handler):
            def run(r: int) -> float:
                started = time.perf_counter()
                for request in requests:
                    handler(request)
                return (time.perf_counter() - started) / len(requests) * 1e6
            return run

        got = take_turns(5, bare=per_request_us(view), wrapped=per_request_us(wrapped))
    finally:
        settings.REGION_NAME = old_region
    with_it, without = min(got["wrapped"]), min(got["bare"])
    return Row("regions", "routing middleware per request (best of 5)", f"{with_it:.2f} µs",
               f"bare view: {without:.2f} µs", with_it / without, "overhead ≤ 50 µs", with_it - without <= 50,
               note=f"overhead {with_it - without:.2f} µs, no query")


def main() -> list[Row]:
    from benchdb import routing_state_clear

    rows = [bench_probe_cycle()]
    try:
        with bench_database():
            rows.append(bench_decision())
            rows.append(bench_middleware())
    finally:
        routing_state_clear()
    return rows
