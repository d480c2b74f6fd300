"""The account usage page renders the company's variant of the banner, and that render is the exposure."""

from __future__ import annotations

import pytest

from accounts.selectors import company_period
from audit.services import Actor
from billing.plans.models import Feature
from growth.models import Exposure, ExposureSource, Placement
from growth.services import experiment_ship, experiment_start
from tests.growth.conftest import company_in
from usage.models import UsageCounter

pytestmark = pytest.mark.django_db
OPS = Actor.system("test")


def use_quotes(company, used: int) -> None:
    start, end = company_period(company)
    UsageCounter.objects.create(
        company=company, feature=Feature.objects.get(code="quotes"), period_start=start, period_end=end,
        used=used, updated_at=start,
    )


def usage_page(client, company) -> str:
    client.force_login(company.owner)
    response = client.get("/account/")
    assert response.status_code == 200
    return response.content.decode()


def test_a_company_in_b_sees_bs_banner_and_the_render_is_one_exposure_a_day(client, make_experiment, make_company):
    experiment = experiment_start(experiment=make_experiment(Placement.USAGE_BANNER, threshold=50), actor=OPS)
    in_b = company_in("b", experiment, make_company)
    use_quotes(in_b, 600)

    page = usage_page(client, in_b)
    usage_page(client, in_b)

    assert 'id="banner-upgrade-prompt"' in page and 'data-variant="b"' in page
    assert "Pro gives you 10x the quotes" in page and "Upgrade to Pro" in page
    assert "You are close to your limit" not in page
    (exposure,) = Exposure.objects.all()
    assert (exposure.company, exposure.variant.key, exposure.source) == (in_b, "b", ExposureSource.PAGE)


def test_below_the_threshold_nothing_is_shown_or_counted(client, make_experiment, make_company):
    experiment = experiment_start(experiment=make_experiment(Placement.USAGE_BANNER, threshold=80), actor=OPS)
    in_a = company_in("a", experiment, make_company)
    use_quotes(in_a, 100)
    assert 'id="banner-upgrade-prompt"' not in usage_page(client, in_a)
    assert not Exposure.objects.exists()


def test_a_shipped_banner_shows_to_everyone_and_counts_nothing(client, make_experiment, make_company):
    experiment = experiment_start(experiment=make_experiment(Placement.USAGE_BANNER, threshold=50), actor=OPS)
    in_a = company_in("a", experiment, make_company)
    use_quotes(in_a, 600)
    experiment_ship(experiment=experiment, variant=experiment.variants.get(key="b"), actor=OPS)
    Exposure.objects.all().delete()

    page = usage_page(client, in_a)

    assert "Pro gives you 10x the quotes" in page
    assert not Exposure.objects.exists()


def test_the_plan_table_placement_highlights_the_variants_tier(client, make_experiment, make_company):
    experiment = experiment_start(experiment=make_experiment(Placement.PLAN_TABLE, threshold=50), actor=OPS)
    in_b = company_in("b", experiment, make_company)
    use_quotes(in_b, 600)
    client.force_login(in_b.owner)

    page = client.get("/account/plans/").content.decode()

    assert 'id="plan-table-prompt"' in page and "Pro gives you 10x the quotes" in page
    pro = page[page.index('data-tier="pro"'):]
    assert pro.index('class="badge recommended highlighted">Upgrade to Pro') < pro.index("</article>")
    assert Exposure.objects.get().variant.key == "b"
    # The usage banner runs no experiment: the usage page shows nothing.
    assert 'id="banner-upgrade-prompt"' not in usage_page(client, in_b)
