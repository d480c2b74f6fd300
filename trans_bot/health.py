"""``GET /healthz``: this deployment's own health, the page the other region probes.

The checks are django-health-check's (database, cache) plus one for the Celery broker;
the view only fixes the contract the prober relies on: always JSON, 200 when every
check passes, 503 when any fails, no authentication, never cached.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable
from health_check.views import HealthCheckView


@dataclasses.dataclass
class Broker(HealthCheck):
    """Opens (and closes) a connection to the Celery broker, whichever transport it is."""

    timeout: datetime.timedelta = dataclasses.field(
        default=datetime.timedelta(seconds=2), repr=False
    )

    def run(self) -> None:
        from trans_bot.celery import app

        try:
            with app.connection_for_write(app.conf.broker_url) as conn:
                # kombu compares the timeout with float seconds; its stubs say int.
                conn.ensure_connection(max_retries=1, timeout=self.timeout.total_seconds())  # type: ignore[arg-type]
        except Exception as exc:  # any transport error means "broker down"
            raise ServiceUnavailable(f"broker unreachable: {type(exc).__name__}") from exc


_NAMES = {"Database": "database", "Cache": "cache", "Broker": "broker"}


class HealthzView(HealthCheckView):
    checks = (
        "health_check.checks.Database",
        "health_check.checks.Cache",
        Broker,
    )

    async def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
        with self.get_executor() as executor:
            self.results = await asyncio.gather(
                *(check.get_result(executor) for check in self.get_checks())
            )
        checks = {
            _NAMES.get(type(r.check).__name__, type(r.check).__name__.lower()): (
                "ok" if r.error is None else str(r.error)
            )
            for r in self.results
        }
        healthy = all(r.error is None for r in self.results)
        return JsonResponse(
            {"status": "ok" if healthy else "fail", "region": settings.REGION_NAME, "checks": checks},
            status=200 if healthy else 503,
        )
