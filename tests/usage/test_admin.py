"""What ops see and do in admin for usage: bars, filters, keys, dry runs, audited plan edits."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine
from django.contrib.messages import get_messages

from accounts.models import CompanyAPIKey
from audit.models import AuditLog
from billing.plans.models import Feature, TierLimit
from usage.models import MonitorRun, UsageCounter

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 16, 12, tzinfo=UTC)


def use(company, feature, used):
    UsageCounter.objects.create(
        company=company, feature=Feature.objects.get(code=feature), used=used, updated_at=NOW,
        period_start=datetime(2026, 11, 1, tzinfo=UTC), period_end=datetime(2026, 12, 1, tzinfo=UTC),
    )


def test_companies_show_bars_and_filter_by_warning_and_exceeded(ops_client, make_company):
    near, over, calm = (make_company(name=n) for n in ("Near Ltd", "Over Inc", "Calm Co"))
    use(near, "quotes", 850)
    use(over, "quotes", 1300)
    use(calm, "quotes", 10)
    with time_machine.travel(NOW, tick=False):
        page = ops_client.get("/admin/accounts/company/").content.decode()
        warning = ops_client.get("/admin/accounts/company/?usage=warning").content.decode()
        exceeded = ops_client.get("/admin/accounts/company/?usage=exceeded").content.decode()
    assert "1,300 / 1,000 (130 %)" in page and "#c62828" in page
    assert "850 / 1,000 (85 %)" in page and "#ed8c00" in page
    assert "Near Ltd" in warning and "Over Inc" not in warning and "Calm Co" not in warning
    assert "Over Inc" in exceeded and "Near Ltd" not in exceeded


def test_editing_a_tier_limit_inline_is_audited(ops_client, catalogue):
    starter = catalogue["starter"]
    limits = list(TierLimit.objects.filter(tier=starter).order_by("id"))
    data = {
        "name": starter.name, "code": starter.code, "monthly_price": "5900", "currency": "USD",
        "order": starter.order, "is_public": "on",
        "limits-TOTAL_FORMS": len(limits), "limits-INITIAL_FORMS": len(limits),
        "limits-MIN_NUM_FORMS": 0, "limits-MAX_NUM_FORMS": 1000,
    }
    for i, limit in enumerate(limits):
        data.update({
            f"limits-{i}-id": limit.pk, f"limits-{i}-tier": starter.pk, f"limits-{i}-feature": limit.feature_id,
            f"limits-{i}-included": 2000 if limit.feature.code == "quotes" else limit.included,
            f"limits-{i}-overage_unit_price": limit.overage_unit_price,
        })
    r = ops_client.post(f"/admin/billing/tier/{starter.pk}/change/", data)
    assert r.status_code == 302, r.content.decode()[:2000]
    tier_log = AuditLog.objects.get(action="admin.billing.tier.change")
    assert tier_log.details["changes"]["monthly_price"] == {"before": 4900, "after": 5900}
    limit_log = AuditLog.objects.get(action="admin.billing.tierlimit.change")
    assert limit_log.details["changes"]["included"] == {"before": 1000, "after": 2000}


def test_an_api_key_is_shown_once_and_works(ops_client, acme, client):
    r = ops_client.post("/admin/accounts/companyapikey/add/", {"company": acme.pk, "name": "prod backend"})
    assert r.status_code == 302
    message = next(str(m) for m in get_messages(r.wsgi_request) if "will not be shown again" in str(m))
    secret = message.split("is: ")[1].split(" ")[0]
    key = CompanyAPIKey.objects.get(company=acme)
    assert secret.startswith(key.prefix) and secret not in key.hashed_key
    assert secret not in str(AuditLog.objects.get(action="billing.api_key.create").details)
    r = client.post(
        "/api/v1/usage/events/", {"events": [{"feature": "quotes", "idempotency_key": "a"}]},
        content_type="application/json", HTTP_AUTHORIZATION=f"Api-Key {secret}",
    )
    assert r.status_code == 200
    first = ops_client.get(f"/admin/accounts/companyapikey/{key.pk}/change/").content.decode()
    assert secret in first  # the one time it is shown
    again = ops_client.get(f"/admin/accounts/companyapikey/{key.pk}/change/").content.decode()
    assert secret not in again


def test_revoking_a_key_from_admin(ops_client, acme, make_key, client):
    secret = make_key(acme)
    key = CompanyAPIKey.objects.get()
    ops_client.post("/admin/accounts/companyapikey/", {"action": "revoke_keys", "_selected_action": [key.pk]})
    assert CompanyAPIKey.objects.get().revoked
    assert AuditLog.objects.filter(action="billing.api_key.revoke").count() == 1
    r = client.post(
        "/api/v1/usage/events/", {"events": [{"feature": "quotes", "idempotency_key": "a"}]},
        content_type="application/json", HTTP_AUTHORIZATION=f"Api-Key {secret}",
    )
    assert r.status_code == 401


def test_usage_events_are_read_only(ops_client):
    assert ops_client.get("/admin/usage/usageevent/").status_code == 200
    assert ops_client.get("/admin/usage/usageevent/add/").status_code == 403


def test_run_a_dry_run_now_from_admin(ops_client, make_company):
    use(make_company(name="Over Inc"), "quotes", 1300)
    with time_machine.travel(NOW, tick=False):
        assert "Run a dry run now" in ops_client.get("/admin/usage/monitorrun/").content.decode()
        r = ops_client.post("/admin/usage/monitorrun/run-dry-run/")
    run = MonitorRun.objects.get()
    assert run.dry_run and run.trigger == "admin" and run.new_breaches == 1
    assert r.url == f"/admin/usage/monitorrun/{run.pk}/change/"
    page = ops_client.get(r.url).content.decode()
    assert "Over Inc" in page
    assert ops_client.get(f"/admin/usage/monitorrun/{run.pk}/delete/").status_code == 403
