"""The warning-e-mail placement: the nightly monitor's e-mail to the owners carries the
company's variant, and queueing that e-mail is the exposure."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine

from audit.services import Actor
from billing.plans.models import Feature
from growth.models import Exposure, ExposureSource, Placement
from growth.services import experiment_start
from ops.models import Notification
from tests.growth.conftest import company_in
from usage.models import UsageCounter
from usage.monitor import usage_monitor_run

pytestmark = pytest.mark.django_db
NOV, DEC = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
NIGHT = datetime(2026, 11, 16, 2, tzinfo=UTC)


def use_quotes(company, used: int) -> None:
    UsageCounter.objects.create(
        company=company, feature=Feature.objects.get(code="quotes"), period_start=NOV, period_end=DEC,
        used=used, updated_at=NOV,
    )


def test_the_owners_warning_e_mail_carries_the_variant_and_counts_as_exposure(make_experiment, make_company):
    experiment = experiment_start(
        experiment=make_experiment(Placement.WARNING_EMAIL, key="mail-copy", holdout="0.3"), actor=Actor.system("t")
    )
    in_b = company_in("b", experiment, make_company)
    held = company_in(None, experiment, make_company)
    use_quotes(in_b, 850)
    use_quotes(held, 850)

    with time_machine.travel(NIGHT, tick=False):
        usage_monitor_run()

    mail_b = Notification.objects.get(kind="usage.warning", company=in_b)
    mail_held = Notification.objects.get(kind="usage.warning", company=held)
    assert "Pro gives you 10x the quotes Upgrade to Pro: " in mail_b.text
    assert f"/account/plans/?company={in_b.slug}" in mail_b.text
    assert "Pro gives you" not in mail_held.text and "You are close" not in mail_held.text
    # B's e-mail is B's exposure; the holdout's e-mail, sent without a prompt, is the holdout's.
    exposures = {(e.company, e.variant.key if e.variant else None, e.source) for e in Exposure.objects.all()}
    assert exposures == {(in_b, "b", ExposureSource.EMAIL), (held, None, ExposureSource.EMAIL)}
