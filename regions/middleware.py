"""The health gate in front of the app: tells every response who served it and who is
active, and sends writes that reach a standby deployment to the active region.

It reads only ``routing.current()`` (in-process, refreshed from the cache at most once
a second), so a request costs no database query.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from core.errors import ServiceUnavailable, error_response
from regions import routing

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class RegionRoutingMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.region = settings.REGION_NAME
        self.exempt = tuple(settings.REGIONS_ROUTING_EXEMPT)
        self.routed = tuple(settings.REGIONS_ROUTED_PREFIXES)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        state = routing.current()
        response = self._route(request, state) if state.multi_region else None
        if response is None:
            response = self.get_response(request)
        response["X-Region"] = self.region
        # Read again: a failover this request made has published the new state by now.
        response["X-Active-Region"] = routing.current().active or self.region
        return response

    def _route(self, request: HttpRequest, state: routing.RoutingState) -> HttpResponse | None:
        path = request.path_info
        if not path.startswith(self.routed) or path.startswith(self.exempt):
            return None
        write = request.method in WRITE_METHODS
        if write and not state.active_healthy:
            response: HttpResponse = error_response(
                ServiceUnavailable(
                    "No healthy region is taking writes right now; retry shortly.", code="no_healthy_region"
                )
            )
            response["Retry-After"] = str(state.retry_after)
            return response
        if state.active == self.region or not state.active_url:
            return None
        if not write and state.read_policy == "serve":
            return None
        location = state.active_url + request.get_full_path()
        response = HttpResponse(
            json.dumps({"redirect": location, "active_region": state.active}),
            status=307,
            content_type="application/json",
        )
        response["Location"] = location
        return response
