"""Fixtures for the ops spine: a fake Slack on loopback wired into settings, a company."""

import pytest

from tests.ops.fake_slack import FakeSlack


@pytest.fixture
def fake_slack(settings):
    with FakeSlack() as slack:
        settings.SLACK_WEBHOOK_URL = slack.url
        settings.SLACK_KIND_WEBHOOKS = {}
        yield slack


@pytest.fixture
def ops_emails(settings):
    settings.OPS_EMAILS = ["ops@transbot.local", "oncall@transbot.local"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    return settings.OPS_EMAILS


@pytest.fixture
def acme(db):
    from accounts.models import Company

    return Company.objects.create(name="Acme Freight", slug="acme-freight")
