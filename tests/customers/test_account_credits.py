"""The account usage page shows credits left and the overage after credits."""

from __future__ import annotations

from datetime import timedelta

import pytest

from audit.services import Actor
from billing.plans.credits import credit_grant_create, credit_grant_expire
from billing.plans.models import CreditKind, Feature
from tests.customers.test_account_pages import signed_in, text

pytestmark = pytest.mark.django_db
OPS = Actor.system("test-ops")


def _grant(company, now, *, amount, feature=None):
    return credit_grant_create(
        company=company,
        kind=CreditKind.UNITS if feature else CreditKind.MONEY,
        feature=Feature.objects.get(code=feature) if feature else None,
        amount=amount,
        starts_at=now - timedelta(days=1),
        expires_at=now + timedelta(days=27),
        reason="Ticket T-9",
        actor=OPS,
    )


def test_the_usage_page_shows_credits_left_and_the_overage_after_them(client, acme, frozen):
    # Acme is 60 directory invites over at 0.25 USD: 15.00 USD so far.
    _grant(acme, frozen, amount=40, feature="directory_invites")
    _grant(acme, frozen, amount=2_000)  # 20.00 USD: pays the other 20 invites (5.00 USD)

    page = text(signed_in(client, acme.member).get("/account/"))

    assert "60 over the limit: 15.00 USD so far, 60 of them paid by credits (0.00 USD to pay)." in page
    assert "Overage so far 15.00 USD Paid by credits −15.00 USD Overage after credits 0.00 USD" in page
    assert "Total so far 199.00 USD" in page  # Pro's price, nothing on top
    assert "billed at 0.25 USD: 15.00 USD so far (0.00 USD after credits)," in page  # the over-limit banner
    assert "0 invites left of 40, for Directory invites overage, until 31 Jan 2027." in page
    assert "15.00 USD left of 20.00 USD, for any overage, until 31 Jan 2027." in page


def test_without_usable_credits_the_page_says_nothing_about_them(client, acme, frozen):
    grant = _grant(acme, frozen, amount=2_000)
    credit_grant_expire(grant=grant, actor=OPS)

    page = text(signed_in(client, acme.member).get("/account/"))

    assert "Credits" not in page and "Paid by credits" not in page
    assert "Overage so far 15.00 USD Total so far 214.00 USD" in page
