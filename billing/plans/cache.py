"""The catalogue as the ingest path reads it, from this process's memory (``core.hotcache``):
the feature map and a company's entitlements cost no query per request, and a change to
a feature, a tier's limits or a contract override is seen everywhere within a second."""

from __future__ import annotations

from datetime import datetime

from billing.plans.models import EntitlementOverride, Feature, TierLimit
from billing.plans.selectors import Entitlement, EntitlementSources, entitlement_sources, entitlements_resolve
from core import hotcache

_features: hotcache.HotCache[dict[str, int]] = hotcache.HotCache("features", depends_on=(Feature,))
_sources: hotcache.HotCache[EntitlementSources] = hotcache.HotCache(
    "entitlement sources", depends_on=(Feature, TierLimit, EntitlementOverride)
)


def feature_ids() -> dict[str, int]:
    """Feature code → id, for every metered feature. Do not change the dict returned."""
    mapping = _features.get("all", lambda: dict(Feature.objects.values_list("code", "id")))
    assert mapping is not None
    return mapping


def entitlements_cached(*, company_id: int, tier_id: int, at: datetime) -> dict[str, Entitlement]:
    """``billing.plans.selectors.entitlements_effective``, from the rows this process keeps
    (every override of the company, resolved at ``at``)."""
    sources = _sources.get(
        (company_id, tier_id), lambda: entitlement_sources(company_id=company_id, tier_id=tier_id)
    )
    assert sources is not None
    return entitlements_resolve(sources, at=at)
