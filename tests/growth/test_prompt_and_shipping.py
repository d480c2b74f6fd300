"""What the usage summary's upgrade.prompt says, and what shipping a winner changes."""

from __future__ import annotations

import pytest

from accounts.selectors import company_period
from audit.models import AuditLog
from audit.services import Actor
from billing.plans.models import Feature
from core.errors import Conflict
from growth.models import ExperimentStatus, Placement, Variant
from growth.services import (
    ExperimentLocked,
    experiment_assert_editable,
    experiment_ship,
    experiment_start,
    experiment_stop,
)
from tests.growth.conftest import company_in
from usage.models import UsageCounter

pytestmark = pytest.mark.django_db
OPS = Actor.system("test")
SUMMARY = "/api/v1/usage/summary/"


def use_quotes(company, used: int) -> None:
    start, end = company_period(company)
    UsageCounter.objects.create(
        company=company, feature=Feature.objects.get(code="quotes"), period_start=start, period_end=end,
        used=used, updated_at=start,
    )


def prompt(key_client, company):
    response = key_client(company).get(SUMMARY)
    assert response.status_code == 200
    return response.json()["upgrade"]["prompt"]


def test_a_company_in_b_over_the_threshold_gets_bs_prompt(make_experiment, make_company, key_client):
    experiment = experiment_start(experiment=make_experiment(threshold=80), actor=OPS)
    in_b = company_in("b", experiment, make_company)
    use_quotes(in_b, 850)  # Starter includes 1,000 quotes: 85 %

    assert prompt(key_client, in_b) == {
        "experiment": "prompt-copy",
        "variant": "b",
        "headline": "Pro gives you 10x the quotes",
        "call_to_action": "Upgrade to Pro",
        "highlighted_tier": "pro",
        "threshold_percent": 80,
    }


def test_no_prompt_below_the_threshold_in_the_holdout_or_without_an_experiment(
    make_experiment, make_company, key_client
):
    lonely = make_company()
    use_quotes(lonely, 900)
    assert prompt(key_client, lonely) is None  # nothing running, nothing shipped

    experiment = experiment_start(experiment=make_experiment(holdout="0.5"), actor=OPS)
    below = company_in("a", experiment, make_company)
    use_quotes(below, 500)
    held = company_in(None, experiment, make_company)
    use_quotes(held, 900)
    assert prompt(key_client, below) is None
    assert prompt(key_client, held) is None


def test_shipping_a_winner_makes_it_everyones_prompt_and_stops_the_experiment(
    make_experiment, make_company, key_client
):
    experiment = experiment_start(experiment=make_experiment(), actor=OPS)
    in_a = company_in("a", experiment, make_company)
    use_quotes(in_a, 900)
    assert prompt(key_client, in_a)["variant"] == "a"

    b = experiment.variants.get(key="b")
    experiment_ship(experiment=experiment, variant=b, actor=Actor.system("olivia"))

    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.SHIPPED and experiment.winner == b and experiment.stops_at
    shipped = prompt(key_client, in_a)
    assert (shipped["variant"], shipped["headline"], shipped["experiment"]) == (
        "b", "Pro gives you 10x the quotes", None
    )
    audit = AuditLog.objects.get(action="growth.experiment.ship")
    assert audit.details == {"winner": "b", "placement": Placement.API_PROMPT} and audit.actor_label == "olivia"


def test_a_running_experiments_variants_cannot_change(make_experiment):
    experiment = make_experiment()
    experiment_assert_editable(experiment=experiment)  # a draft may change
    experiment_start(experiment=experiment, actor=OPS)
    with pytest.raises(ExperimentLocked):
        experiment_assert_editable(experiment=experiment)


def test_one_running_experiment_per_placement_and_start_needs_a_control(make_experiment, catalogue):
    experiment_start(experiment=make_experiment(key="first"), actor=OPS)
    second = make_experiment(key="second")
    with pytest.raises(Conflict) as busy:
        experiment_start(experiment=second, actor=OPS)
    assert busy.value.code == "placement_busy"

    lone = make_experiment(Placement.USAGE_BANNER, key="lone")
    Variant.objects.filter(experiment=lone, key="b").delete()
    with pytest.raises(Exception, match="at least two variants"):
        experiment_start(experiment=lone, actor=OPS)


def test_stop_is_audited_and_a_stopped_experiment_cannot_stop_again(make_experiment):
    experiment = experiment_start(experiment=make_experiment(), actor=OPS)
    experiment_stop(experiment=experiment, actor=OPS)
    with pytest.raises(Conflict):
        experiment_stop(experiment=experiment, actor=OPS)
    actions = AuditLog.objects.filter(action__startswith="growth.").order_by("id").values_list("action", flat=True)
    assert list(actions) == [
        "growth.experiment.start",
        "growth.experiment.stop",
    ]


def test_a_draft_shows_nothing(make_experiment, make_company, key_client):
    make_experiment()
    acme = make_company()
    use_quotes(acme, 990)
    assert prompt(key_client, acme) is None
