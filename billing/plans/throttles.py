"""The public pricing calculator's limit: ``QUOTE_RATE`` quotes per client address
(``core.middleware.client_ip``, the address the audit trail records), counted in Redis with
DRF's throttle. The calculator is a public page's, so with Redis down it answers unlimited
rather than not at all (one warning when that starts, one when Redis is back)."""

from __future__ import annotations

import logging
import time
from typing import Any

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from core.middleware import client_ip
from core.outages import CACHE_ERRORS, Degraded

logger = logging.getLogger(__name__)
_degraded = Degraded("quote throttle: Redis unreachable, quotes not limited", logger)


class QuoteThrottle(SimpleRateThrottle):
    scope = "quote"

    def get_rate(self) -> str | None:
        # DRF's own copy of the rates is taken at import; this reads the settings as they are.
        rates: dict[str, Any] = api_settings.DEFAULT_THROTTLE_RATES  # the stubs say numbers: they are "60/min"
        return rates[self.scope]

    def get_cache_key(self, request: Any, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": client_ip(request._request) or "unknown"}

    def allow_request(self, request: Any, view: Any) -> bool:
        try:
            allowed = super().allow_request(request, view)
        except CACHE_ERRORS as exc:
            _degraded.failed(exc, time.time())
            return True
        _degraded.recovered(time.time())
        return allowed
