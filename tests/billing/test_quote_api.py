"""GET /api/v1/plans/quote/: the pricing calculator's API, public, priced by the one rule."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from billing.plans.catalogue import install_default_catalogue
from billing.plans.models import Feature, Tier, TierLimit

pytestmark = pytest.mark.django_db
URL = "/api/v1/plans/quote/"


@pytest.fixture
def catalogue(db):
    install_default_catalogue(Tier=Tier, Feature=Feature, TierLimit=TierLimit)


def quote(**params):
    return APIClient().get(URL, params)


def totals(body):
    return {t["code"]: t["total"] for t in body["tiers"]}


def test_anyone_gets_every_public_tiers_monthly_cost_and_the_cheapest(catalogue):
    r = quote(quotes=5_000, bulk_jobs=12, directory_invites=10)
    assert r.status_code == 200, r.content
    body = r.json()
    assert totals(body) == {"starter": 4_900 + 4_000 * 5 + 2 * 200, "pro": 19_900, "enterprise": 99_900}
    assert body["cheapest"] == "pro"
    assert [t["code"] for t in body["tiers"] if t["cheapest"]] == ["pro"]
    assert {t["code"]: t["costs_more_by"] for t in body["tiers"]} == {
        "starter": 5_400, "pro": 0, "enterprise": 80_000,
    }
    assert body["reason"] == (
        "Pro is the cheapest plan for this usage: 199.00 USD, 54.00 USD less than Starter (253.00 USD)."
    )
    starter = body["tiers"][0]
    assert starter["features"][0] == {
        "feature": "quotes", "volume": 5_000, "included": 1_000,
        "overage_units": 4_000, "overage_unit_price": 5, "overage_cost": 20_000,
    }


def test_no_volumes_is_the_cheapest_plan_at_its_price(catalogue):
    body = quote().json()
    assert body["volumes"] == {"quotes": 0, "bulk_jobs": 0, "directory_invites": 0}
    assert body["cheapest"] == "starter" and totals(body)["starter"] == 4_900


def test_a_private_tier_is_not_quoted(catalogue):
    Tier.objects.create(code="legacy", name="Legacy", monthly_price=100, is_public=False)
    assert "legacy" not in totals(quote(quotes=1).json())


def test_a_new_feature_in_the_catalogue_is_quoted_and_a_tier_without_its_limit_is_not_offered(catalogue):
    loads = Feature.objects.create(code="loads", name="Loads", order=40)
    TierLimit.objects.create(tier=Tier.objects.get(code="enterprise"), feature=loads, included=None)
    body = quote(loads=3).json()
    offered = {t["code"]: (t["offered"], t["not_offered"]) for t in body["tiers"]}
    assert offered == {"starter": (False, ["loads"]), "pro": (False, ["loads"]), "enterprise": (True, [])}
    assert body["cheapest"] == "enterprise"


@pytest.mark.parametrize(
    "params,field,message",
    [
        ({"quotes": "-1"}, "quotes", "A whole number of units per month, 0 or more."),
        ({"bulk_jobs": "ten"}, "bulk_jobs", "A whole number of units per month, 0 or more."),
        ({"quotes": "1.5"}, "quotes", "A whole number of units per month, 0 or more."),
        ({"quotes": "²"}, "quotes", "A whole number of units per month, 0 or more."),
        ({"directory_invites": "1000000000001"}, "directory_invites", "At most 1,000,000,000,000 per month."),
        ({"quotes": "9" * 5000}, "quotes", "At most 1,000,000,000,000 per month."),
        ({"qoutes": "5"}, "qoutes", "Unknown feature; the features are quotes, bulk_jobs, directory_invites."),
    ],
)
def test_bad_volumes_are_a_400_naming_the_field(catalogue, params, field, message):
    r = quote(**params)
    assert r.status_code == 400
    assert r.json()["error"]["fields"] == [{"field": field, "code": "invalid", "message": message}]


def test_the_quote_is_in_the_openapi_schema_with_a_parameter_per_feature(catalogue, client):
    Feature.objects.create(code="loads", name="Loads", order=40)
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/api/v1/plans/quote/"]["get"]
    assert sorted(p["name"] for p in operation["parameters"]) == ["bulk_jobs", "directory_invites", "loads", "quotes"]
    assert operation["security"] == [{}]  # no credentials needed
