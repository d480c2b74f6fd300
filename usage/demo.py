"""Demo usage at different levels (one company near its limit, one over) and an API key
to try the ingestion endpoint with. Idempotent: events carry fixed idempotency keys."""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone

from accounts.models import Company, CompanyAPIKey
from accounts.selectors import company_period
from billing.plans.models import Feature
from usage.services import usage_record_events
from usage.validation import EventIn, fingerprint

# company slug -> {feature: quantity this period}
DEMO_USAGE = {
    "acme-freight": {"quotes": 420, "bulk_jobs": 3, "directory_invites": 5},  # comfortable
    "near-limit-carriers": {"quotes": 870, "bulk_jobs": 6, "directory_invites": 12},  # 87 % of quotes
    "over-the-road": {"quotes": 12_400, "bulk_jobs": 64, "directory_invites": 80},  # 124 % of quotes
    "globex-logistics": {"quotes": 31_000, "bulk_jobs": 250, "directory_invites": 4_000},  # unlimited invites
}


def load(*, stdout) -> None:
    features = dict(Feature.objects.values_list("code", "id"))
    now = timezone.now()
    for slug, usage in DEMO_USAGE.items():
        company = Company.objects.filter(slug=slug).first()
        if company is None:
            continue
        start, end = company_period(company, now)
        events = [
            EventIn(
                feature_id=features[code],
                quantity=quantity,
                idempotency_key=f"demo-{start:%Y%m}-{code}",
                fingerprint=fingerprint(code, quantity, start),
                occurred_at=start,
                period_start=start,
                period_end=end,
            )
            for code, quantity in usage.items()
        ]
        usage_record_events(company=company, events=events, now=now)

    company = Company.objects.filter(slug="acme-freight").first()
    if company is None:
        return
    key, secret = CompanyAPIKey.objects.create_key(company=company, name=f"demo {now:%Y-%m-%d %H:%M}")
    stdout.write(
        f"\nAPI key for {company.name} (shown once; revoke in admin > Company API keys):\n  {secret}\n"
        "Try it:\n"
        f"  curl -s -X POST {settings.SITE_URL}/api/v1/usage/events/ \\\n"
        f"    -H 'Authorization: Api-Key {secret}' -H 'Content-Type: application/json' \\\n"
        "    -d '{\"events\": [{\"feature\": \"quotes\", \"quantity\": 3, \"idempotency_key\": \"try-1\"}]}'\n"
        f"  curl -s {settings.SITE_URL}/api/v1/usage/summary/ -H 'Authorization: Api-Key {secret}'\n"
    )
