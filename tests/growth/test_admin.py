"""Experiments in admin: start, results with the test against control, ship a winner; a
running experiment's variants are read-only."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from accounts.models import Company
from audit.models import AuditLog
from audit.services import Actor
from growth.models import Conversion, Experiment, ExperimentStatus, Exposure
from growth.services import experiment_start
from growth.stats import compare

pytestmark = pytest.mark.django_db
WHEN = datetime(2026, 11, 10, tzinfo=UTC)


def seed(experiment: Experiment, catalogue, *, key: str, exposed: int, converted: int) -> None:
    variant = experiment.variants.get(key=key)
    companies = Company.objects.bulk_create(
        Company(name=f"{key} {n}", slug=f"seed-{key}-{n}", tier=catalogue["starter"]) for n in range(exposed)
    )
    Exposure.objects.bulk_create(
        Exposure(experiment=experiment, variant=variant, company=c, day=WHEN.date(), shown_at=WHEN, source="page")
        for c in companies
    )
    Conversion.objects.bulk_create(
        Conversion(
            experiment=experiment, variant=variant, company=c, first_exposed_at=WHEN, converted_at=WHEN,
            from_tier=catalogue["starter"], to_tier=catalogue["pro"], revenue_uplift=5000,
        )
        for c in companies[:converted]
    )


def test_the_start_action_starts_a_draft_and_audits_it(ops_client, make_experiment):
    experiment = make_experiment()
    response = ops_client.post(
        "/admin/growth/experiment/", {"action": "start_selected", "_selected_action": [experiment.pk]}, follow=True
    )
    assert [str(m) for m in response.context["messages"]] == ["prompt-copy: started."]
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.RUNNING
    assert AuditLog.objects.filter(action="growth.experiment.start", actor_label="olivia").exists()


def test_results_show_rates_intervals_the_p_value_and_a_sentence(ops_client, make_experiment, catalogue):
    experiment = experiment_start(experiment=make_experiment(), actor=Actor.system("test"))
    seed(experiment, catalogue, key="a", exposed=200, converted=10)
    seed(experiment, catalogue, key="b", exposed=200, converted=24)

    page = ops_client.get(f"/admin/growth/experiment/{experiment.pk}/change/").content.decode()

    p = compare(converted=24, exposed=200, control_converted=10, control_exposed=200).p_value
    assert p is not None and p < 0.05
    assert f"b converts 12.0 % vs 5.0 %, p = {p:.2f}; enough data." in page
    assert f"{p:.3f}" in page and "+7.0 pts" in page
    # A running experiment's variants are shown, not editable.
    assert 'name="variants-0-weight"' not in page and "Pro gives you 10x the quotes" in page


def test_too_little_data_says_so(ops_client, make_experiment, catalogue):
    experiment = experiment_start(experiment=make_experiment(), actor=Actor.system("test"))
    seed(experiment, catalogue, key="a", exposed=30, converted=1)
    seed(experiment, catalogue, key="b", exposed=30, converted=3)
    page = ops_client.get(f"/admin/growth/experiment/{experiment.pk}/change/").content.decode()
    assert "b converts 10.0 % vs 3.3 %" in page and "not enough data yet" in page


def test_shipping_a_winner_from_admin(ops_client, make_experiment):
    experiment = experiment_start(experiment=make_experiment(), actor=Actor.system("test"))
    b = experiment.variants.get(key="b")
    url = f"/admin/growth/experiment/{experiment.pk}/ship/"
    assert ops_client.get(url).status_code == 200

    response = ops_client.post(url, {"variant": b.pk}, follow=True)

    assert "Shipped b" in response.content.decode()
    experiment.refresh_from_db()
    assert (experiment.status, experiment.winner) == (ExperimentStatus.SHIPPED, b)
    assert AuditLog.objects.get(action="growth.experiment.ship").actor_label == "olivia"


def test_staff_without_permission_cannot_ship(client, staff_user, make_experiment):
    experiment = experiment_start(experiment=make_experiment(), actor=Actor.system("test"))
    client.force_login(staff_user)
    response = client.post(f"/admin/growth/experiment/{experiment.pk}/ship/", {"variant": 1})
    assert response.status_code == 403
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.RUNNING


def test_a_draft_is_edited_with_its_variants_and_the_edit_is_audited(ops_client, make_experiment):
    experiment = make_experiment()
    url = f"/admin/growth/experiment/{experiment.pk}/change/"
    page = ops_client.get(url).content.decode()
    assert 'name="variants-0-weight"' in page  # a draft's variants are editable
    a, b = experiment.variants.order_by("key")
    data = {
        "key": experiment.key, "name": "Shorter copy", "placement": experiment.placement,
        "conversion_window_days": 14, "holdout_share": "0.100",
        "variants-TOTAL_FORMS": 2, "variants-INITIAL_FORMS": 2, "variants-MIN_NUM_FORMS": 0,
        "variants-MAX_NUM_FORMS": 1000,
    }
    for i, v in enumerate((a, b)):
        data.update({
            f"variants-{i}-id": v.pk, f"variants-{i}-experiment": experiment.pk, f"variants-{i}-key": v.key,
            f"variants-{i}-is_control": "on" if v.is_control else "", f"variants-{i}-weight": 3 if v.key == "b" else 1,
            f"variants-{i}-headline": v.headline, f"variants-{i}-call_to_action": v.call_to_action,
            f"variants-{i}-highlighted_tier": v.highlighted_tier_id or "", f"variants-{i}-threshold_percent": 80,
        })
    data = {k: v for k, v in data.items() if v != ""}

    response = ops_client.post(url, data)

    assert response.status_code == 302, response.content.decode()[:2000]
    b.refresh_from_db()
    assert b.weight == 3
    assert AuditLog.objects.filter(action="admin.growth.variant.change").exists()
    assert AuditLog.objects.filter(action="admin.growth.experiment.change").exists()
