"""Demo usage at different levels (one company near its limit, one over) and an API key
to try the ingestion endpoint with. Idempotent: events carry fixed idempotency keys, and
a rerun prints the same key (its secret is kept in ``VAR_DIR/demo-api-key``, as a secret is
stored nowhere else); only when that key is gone does it make a new one and revoke the old."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.utils import timezone

from accounts.models import Company, CompanyAPIKey
from accounts.selectors import company_period
from accounts.services import company_api_key_create, company_api_key_revoke
from audit.services import Actor
from billing.plans.models import Feature
from usage.services import usage_record_events
from usage.validation import EventIn, fingerprint

DEMO_ACTOR = Actor.system("make demo")
KEY_NAME = "demo key (make demo)"
KEY_FILE = "demo-api-key"

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
    secret, how = demo_key(company=company)
    stdout.write(
        f"\nAPI key for {company.name}: {how}\n  {secret}\n"
        "Try it:\n"
        f"  curl -s -X POST {settings.SITE_URL}/api/v1/usage/events/ \\\n"
        f"    -H 'Authorization: Api-Key {secret}' -H 'Content-Type: application/json' \\\n"
        "    -d '{\"events\": [{\"feature\": \"quotes\", \"quantity\": 3, \"idempotency_key\": \"try-1\"}]}'\n"
        f"  curl -s {settings.SITE_URL}/api/v1/usage/summary/ -H 'Authorization: Api-Key {secret}'\n"
    )


def demo_key(*, company: Company) -> tuple[str, str]:
    """The demo's API key secret, and how it came about: the one from the last run while
    it still works; otherwise a new one, the old demo keys revoked (both audited)."""
    path = Path(settings.VAR_DIR) / KEY_FILE
    kept = path.read_text().strip() if path.exists() else ""
    if kept:
        key = CompanyAPIKey.objects.filter(company=company, prefix=kept.partition(".")[0], revoked=False).first()
        if key is not None and not key.has_expired and key.is_valid(kept):
            return kept, f"the same key as the last run (its secret is kept in {path}; revoke it in admin)"
    old = list(CompanyAPIKey.objects.filter(company=company, name__startswith="demo", revoked=False))
    revoked = [key.prefix for key in old if company_api_key_revoke(key=key, actor=DEMO_ACTOR)]
    _, secret = company_api_key_create(company=company, name=KEY_NAME, actor=DEMO_ACTOR)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(secret + "\n")
    path.chmod(0o600)
    why = "the last run's key no longer works" if kept else "no key was kept from an earlier run"
    return secret, (
        f"a NEW key ({why}); revoked the old demo key(s) {', '.join(revoked)}"
        if revoked
        else f"a new key ({why}; its secret is kept in {path} so the next run prints it again)"
    )
