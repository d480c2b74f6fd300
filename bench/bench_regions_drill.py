"""The whole failover path, end to end: fake regions, the web process (gunicorn), a Celery
worker and beat on PostgreSQL + Redis, policy interval 1 s and threshold 3.

A client keeps POSTing usage events to the primary's web deployment every 50 ms, never
following redirects: 200 (served by the primary) and 503 ``no_healthy_region`` (writes
refused while the active region is failing) are expected, a 307 must point at the
secondary and is then sent there by hand; anything else fails the run. We take the primary
down and time until the first write lands on the secondary. Goal: ≤ 5 s. Sizes:
BENCH_DRILLS (default 3)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from benchdb import bench_database, database_url, free_port, http_client, routing_state_clear, size, stop
from table import BenchFailure, Row

BASELINE = (
    "A bare detector measured at the same time: a thread that probes the primary's health URL every "
    "interval (1 s, same timeout) with httpx and notes when it has seen `threshold` (3) failures in a "
    "row — the least time any prober at that interval can take to be sure. Its time from the moment "
    "the primary goes down is the baseline; the project's figure adds beat's phase, the worker, the "
    "gate's transaction, publishing the routing state and the web process picking it up (≤ 1 s)."
)
ROOT = Path(__file__).resolve().parent.parent
DRILLS = size("BENCH_DRILLS", 3)
INTERVAL, THRESHOLD = 1, 3
GOAL_S = 5.0


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise BenchFailure(f"timed out waiting for {what}")


class BareDetector(threading.Thread):
    """Probes ``url`` every INTERVAL s; ``detected_at`` is the time of the THRESHOLD-th
    failure in a row seen after ``down_at``."""

    def __init__(self, url: str, down_at: float) -> None:
        super().__init__(daemon=True)
        self.url, self.down_at = url, down_at
        self.detected_at: float | None = None
        self.stopped = threading.Event()

    def run(self) -> None:
        import httpx

        failures = 0
        with httpx.Client(timeout=0.5) as client:
            while not self.stopped.is_set():
                try:
                    ok = client.get(self.url).status_code == 200
                except httpx.HTTPError:
                    ok = False
                failures = 0 if ok else failures + 1
                if failures >= THRESHOLD:
                    self.detected_at = time.time()
                    return
                self.stopped.wait(INTERVAL)


def main() -> list[Row]:
    with bench_database() as db_name:
        from django.conf import settings
        from django.db import connection

        from accounts.models import Company, CompanyAPIKey
        from audit.services import Actor
        from regions.fake import FakeRegionServer
        from regions.models import Region, RegionStatus
        from regions.selectors import policy_get
        from regions.services import policy_sync_schedule, region_fail_over

        env = {**os.environ, "DATABASE_URL": database_url(db_name), "CONN_MAX_AGE": "0", "REGION_NAME": "primary",
               "DEBUG": "false"}
        primary_fake = FakeRegionServer(name="primary").start()
        secondary_fake = FakeRegionServer(name="secondary").start()
        company = Company.objects.create(name="Drill Co", slug="drill-co")
        _, secret = CompanyAPIKey.objects.create_key(company=company, name="drill")
        policy = policy_get()
        policy.multi_region_enabled = True
        policy.probe_interval_seconds = INTERVAL
        policy.failure_threshold = THRESHOLD
        policy.recovery_threshold = 3
        policy.cooldown_seconds = 0
        policy.save()
        policy_sync_schedule(policy=policy)
        primary = Region.objects.create(name="Primary", slug="primary", base_url=primary_fake.base_url, order=0,
                                        probe_timeout=0.5, is_active=True)
        Region.objects.create(name="Secondary", slug="secondary", base_url=secondary_fake.base_url, order=1,
                              probe_timeout=0.5)
        web_port = free_port()
        logs = Path(settings.VAR_DIR) / "bench"
        logs.mkdir(parents=True, exist_ok=True)
        py, celery = sys.executable, str(Path(sys.executable).with_name("celery"))

        def spawn(args: list[str], log: str) -> subprocess.Popen[bytes]:
            return subprocess.Popen(args, cwd=ROOT, env=env, stdout=open(logs / log, "w"), stderr=subprocess.STDOUT)

        procs = [
            spawn([py, "-m", "gunicorn", "trans_bot.wsgi", "-b", f"127.0.0.1:{web_port}",
                   "-w", str(size("BENCH_WORKERS", 2))], "drill-web.log"),
            spawn([celery, "-A", "trans_bot", "worker", "--pool", "solo", "--loglevel", "WARNING"], "drill-worker.log"),
            spawn([celery, "-A", "trans_bot", "beat", "--loglevel", "WARNING", "-s", str(logs / "drill-beat-schedule")],
                  "drill-beat.log"),
        ]
        web = f"http://127.0.0.1:{web_port}"
        client = http_client(timeout=5, headers={"Authorization": f"Api-Key {secret}"})
        results: list[tuple[float, float]] = []
        try:
            _wait(lambda: _get_ok(client, f"{web}/healthz"), 60, "the web process")

            def both_healthy() -> bool:
                return Region.objects.filter(status=RegionStatus.HEALTHY).count() == 2

            for drill in range(DRILLS):
                _wait(both_healthy, 60, "both regions healthy")
                _wait(lambda: Region.objects.get(pk=primary.pk).consecutive_successes >= 3, 30, "primary steady")
                landed_before = len(secondary_fake.requests)
                down_at = time.time()
                primary_fake.set_mode("fail")
                detector = BareDetector(f"{primary_fake.base_url}/healthz", down_at)
                detector.start()
                landed_at = None
                while time.time() - down_at < 30 and landed_at is None:
                    landed_at = _write(client, web, secondary_fake, landed_before, drill)
                    time.sleep(0.05)
                detector.join(timeout=10)
                detector.stopped.set()
                primary_fake.set_mode("ok")
                if landed_at is None or detector.detected_at is None:
                    raise BenchFailure("writes never landed on the secondary" if landed_at is None
                                       else "the bare detector never saw the primary fail")
                results.append((landed_at - down_at, detector.detected_at - down_at))
                print(f"drill {drill + 1}: writes on the secondary after {landed_at - down_at:.2f} s; "
                      f"bare detector {detector.detected_at - down_at:.2f} s", flush=True)
                if drill == DRILLS - 1:
                    break
                _wait(lambda: Region.objects.get(pk=primary.pk).status == RegionStatus.HEALTHY, 30, "recovery")
                region_fail_over(to=Region.objects.get(pk=primary.pk), reason="bench reset",
                                 actor=Actor.system("bench"), force=True)
        finally:
            client.close()
            for proc in procs:
                stop(proc)
            primary_fake.stop()
            secondary_fake.stop()
            connection.close()
            routing_state_clear()
            from trans_bot.celery import app

            app.control.purge()

    worst, worst_base = max(r[0] for r in results), max(r[1] for r in results)
    return [Row("regions_drill", f"primary down → first write on the secondary, worst of {len(results)}",
                f"{worst:.2f} s (best {min(r[0] for r in results):.2f} s)",
                f"bare detector: {worst_base:.2f} s", worst / worst_base, f"≤ {GOAL_S:.0f} s", worst <= GOAL_S,
                note=f"interval {INTERVAL} s, threshold {THRESHOLD}")]


def _write(client, web: str, secondary_fake, landed_before: int, drill: int) -> float | None:
    """One write to the primary's web deployment; the time it landed on the secondary, if it did."""
    body = {"events": [{"feature": "quotes", "idempotency_key": f"drill-{drill}-{uuid.uuid4().hex}"}]}
    response = client.post(f"{web}/api/v1/usage/events/", json=body)
    if response.status_code == 200:
        return None
    if response.status_code == 503 and response.json().get("error", {}).get("code") == "no_healthy_region":
        return None
    if response.status_code == 307:
        location = response.headers.get("Location", "")
        if not location.startswith(secondary_fake.base_url):
            raise BenchFailure(f"307 to {location!r}, not to the secondary")
        landed = client.post(location, json=body)
        if landed.status_code != 200 or landed.json().get("region") != "secondary":
            raise BenchFailure(f"the secondary answered {landed.status_code}: {landed.text[:200]}")
        return secondary_fake.requests[landed_before][3]
    raise BenchFailure(f"POST /api/v1/usage/events/ on the primary: HTTP {response.status_code}: {response.text[:200]}")


def _get_ok(client, url) -> bool:
    try:
        return client.get(url).status_code in (200, 503)
    except Exception:
        return False
