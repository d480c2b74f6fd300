"""Rate limits per API key: one noisy backend cannot starve the others."""

from __future__ import annotations

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from billing.models import CompanyAPIKey


class UsageIngestThrottle(SimpleRateThrottle):
    scope = "usage_ingest"

    def get_rate(self):
        # Read at request time, so a changed setting applies without a restart of the class.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request, view):
        if isinstance(request.auth, CompanyAPIKey):
            ident = f"key:{request.auth.prefix}"
        else:
            ident = self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}
