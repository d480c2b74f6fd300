"""The dashboard shows each figure only to staff who may open the admin page behind it:
a staff account without permissions sees no billing, usage, task or region figures."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from accounts.models import Company
from billing.plans.catalogue import install_default_catalogue
from billing.plans.models import Feature, Tier, TierLimit
from billing.stripe.models import BillingEvent
from regions.models import Region
from trans_bot.dashboard import dashboard_overview

pytestmark = pytest.mark.django_db


@pytest.fixture
def billed(db):
    now = timezone.now()
    install_default_catalogue(Tier=Tier, Feature=Feature, TierLimit=TierLimit)
    acme = Company.objects.create(name="Acme Freight", slug="acme", tier=Tier.objects.get(code="starter"))
    BillingEvent.objects.create(
        kind="overage", status="sent", company=acme, units=2469, amount=123_45, currency="USD",
        identifier="tb-test-1", sent_at=now, created_at=now,
    )
    BillingEvent.objects.create(kind="overage", status="failed", company=acme, created_at=now, identifier="tb-2")
    Region.objects.create(
        name="EU primary", slug="primary", base_url="http://10.1.2.3:8101", order=0, is_active=True,
        status="healthy",
    )


def test_staff_without_permissions_see_no_figures(client, staff_user, billed):
    overview = dashboard_overview(user=staff_user)
    assert overview.visible == frozenset()
    assert overview.billed_this_month is None and overview.billing_failed is None
    assert overview.companies_exceeded_now is None and overview.tasks_open_total is None
    assert overview.regions is None and overview.availability is None

    client.force_login(staff_user)
    page = client.get("/admin/").content.decode()
    assert "123.45 USD" not in page and "2469 units" not in page
    assert "EU primary" not in page


def test_a_view_permission_opens_its_figures_only(client, staff_user, billed):
    staff_user.user_permissions.add(Permission.objects.get(codename="view_billingevent"))
    staff_user = type(staff_user).objects.get(pk=staff_user.pk)
    overview = dashboard_overview(user=staff_user)
    assert overview.visible == {"billing"}
    assert overview.billed_this_month[0]["amount"] == 123_45
    assert overview.billing_failed == 1
    assert overview.regions is None and overview.companies_exceeded_now is None

    client.force_login(staff_user)
    assert "123.45 USD" in client.get("/admin/").content.decode()


def test_ops_see_everything(client, ops_user, billed):
    overview = dashboard_overview(user=ops_user)
    assert overview.visible == {"regions", "tasks", "usage", "crossings", "monitor", "billing", "webhooks", "alerts"}
    client.force_login(ops_user)
    page = client.get("/admin/").content.decode()
    assert "123.45 USD" in page and "EU primary" in page
