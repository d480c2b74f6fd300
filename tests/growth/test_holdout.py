"""The holdout sees no prompt and is measured as such: its "would have been shown" is an
exposure without a variant, its upgrades convert, and the results compare it with control."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from accounts.models import Company
from accounts.selectors import company_period
from audit.services import Actor
from billing.plans.models import Feature
from growth.models import Conversion, Experiment, Exposure, ExposureSource, Placement
from growth.selectors import experiment_results, results_sentence
from growth.services import experiment_start, exposure_record
from growth.stats import compare
from tests.billing.stripe_fixtures import *  # noqa: F401,F403
from tests.growth.conftest import company_in
from tests.growth.test_exposures_and_conversions import _upgrade_through_stripe
from usage.models import UsageCounter

pytestmark = pytest.mark.django_db
OPS = Actor.system("test")
SUMMARY = "/api/v1/usage/summary/"
EXPOSURES = "/api/v1/experiments/exposures/"
WHEN = datetime(2026, 11, 10, tzinfo=UTC)


def use_quotes(company, used: int) -> None:
    start, end = company_period(company)
    UsageCounter.objects.create(
        company=company, feature=Feature.objects.get(code="quotes"), period_start=start, period_end=end,
        used=used, updated_at=start,
    )


def test_a_holdout_company_at_the_threshold_sees_no_banner_and_is_counted_as_the_holdout(
    client, make_experiment, make_company
):
    experiment = experiment_start(
        experiment=make_experiment(Placement.USAGE_BANNER, holdout="0.5", threshold=50), actor=OPS
    )
    held, below = company_in(None, experiment, make_company), company_in(None, experiment, make_company)
    use_quotes(held, 600)
    use_quotes(below, 100)

    for company in (held, below):
        client.force_login(company.owner)
        page = client.get("/account/").content.decode()
        assert 'id="banner-upgrade-prompt"' not in page and "Pro gives you" not in page

    (exposure,) = Exposure.objects.all()
    assert (exposure.company, exposure.variant, exposure.source) == (held, None, ExposureSource.PAGE)


def test_the_summary_tells_the_frontend_a_holdout_company_would_have_seen_the_prompt(
    make_experiment, make_company, key_client
):
    experiment = experiment_start(experiment=make_experiment(holdout="0.5"), actor=OPS)
    held, in_b = company_in(None, experiment, make_company), company_in("b", experiment, make_company)
    use_quotes(held, 900)
    use_quotes(in_b, 900)

    held_api = key_client(held)
    held_upgrade = held_api.get(SUMMARY).json()["upgrade"]
    b_upgrade = key_client(in_b).get(SUMMARY).json()["upgrade"]

    assert (held_upgrade["prompt"], held_upgrade["holdout"]) == (None, {"experiment": "prompt-copy"})
    assert (b_upgrade["prompt"]["variant"], b_upgrade["holdout"]) == ("b", None)
    # The frontend shows nothing and says so: the holdout's exposure.
    answer = held_api.post(EXPOSURES, {"experiment": "prompt-copy"}, format="json")
    assert answer.status_code == 200 and answer.json() == {"recorded": True, "variant": None}
    assert list(Exposure.objects.values_list("company", "variant")) == [(held.pk, None)]


def test_a_holdout_company_that_upgrades_converts_for_the_holdout(
    client, fake_stripe, stripe_company, make_experiment
):
    experiment = experiment_start(experiment=make_experiment(holdout="0.5"), actor=OPS, now=WHEN)
    held = company_in(None, experiment, stripe_company)
    exposure_record(company=held, experiment=experiment, source=ExposureSource.API, now=WHEN)
    _upgrade_through_stripe(client, fake_stripe, held, at=WHEN + timedelta(days=2))

    (conversion,) = Conversion.objects.all()
    assert (conversion.company, conversion.variant, conversion.first_exposed_at) == (held, None, WHEN)
    (holdout_row,) = [r for r in experiment_results(experiment) if r.is_holdout]
    assert (holdout_row.exposed, holdout_row.converted, holdout_row.rate) == (1, 1, 1.0)


def _seed(experiment: Experiment, catalogue, *, key: str | None, exposed: int, converted: int) -> None:
    variant = experiment.variants.get(key=key) if key else None
    companies = Company.objects.bulk_create(
        Company(name=f"{key} {n}", slug=f"held-{key}-{n}", tier=catalogue["starter"]) for n in range(exposed)
    )
    Exposure.objects.bulk_create(
        Exposure(experiment=experiment, variant=variant, company=c, day=WHEN.date(), shown_at=WHEN, source="page")
        for c in companies
    )
    Conversion.objects.bulk_create(
        Conversion(
            experiment=experiment, variant=variant, company=c, first_exposed_at=WHEN, converted_at=WHEN,
            from_tier=catalogue["starter"], to_tier=catalogue["pro"], revenue_uplift=15000,
        )
        for c in companies[:converted]
    )


def test_results_show_the_holdout_against_control(ops_client, make_experiment, catalogue):
    experiment = experiment_start(experiment=make_experiment(holdout="0.2"), actor=OPS)
    _seed(experiment, catalogue, key="a", exposed=200, converted=20)
    _seed(experiment, catalogue, key="b", exposed=200, converted=24)
    _seed(experiment, catalogue, key=None, exposed=100, converted=3)

    rows = {r.key: r for r in experiment_results(experiment)}
    held = rows["holdout"]
    expected = compare(converted=3, exposed=100, control_converted=20, control_exposed=200)
    assert (held.exposed, held.converted, held.rate, held.revenue_uplift) == (100, 3, 0.03, 45000)
    assert held.comparison == expected and expected.p_value is not None
    assert f"the holdout (no prompt) converts 3.0 % vs 10.0 %, p = {expected.p_value:.2f}" in results_sentence(
        list(rows.values())
    )
    page = ops_client.get(f"/admin/growth/experiment/{experiment.pk}/change/").content.decode()
    assert "holdout (no prompt)" in page and "-7.0 pts" in page
