"""Fixtures every test folder can use. App-specific fixtures live in tests/<app>/conftest.py."""

import pytest
from django.db.backends.signals import connection_created


def _allow_test_flush(sender, connection, **kwargs):
    # Transactional tests end with a TRUNCATE of every table; the audit trigger allows
    # that only to a superuser session that asks for maintenance (see audit migration 0002).
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET trans_bot.audit_maintenance = 'on'")


connection_created.connect(_allow_test_flush, dispatch_uid="allow_test_flush")


@pytest.fixture(autouse=True)
def _fresh_routing_state():
    """Each test starts with no routing state cached (Redis outlives a test) and this
    process's snapshot forgotten, so a failover in one test never routes another."""
    from django.core.cache import cache

    from regions import routing

    cache.delete(routing.CACHE_KEY)
    routing.reset_process_state()
    yield
    cache.delete(routing.CACHE_KEY)
    routing.reset_process_state()


@pytest.fixture
def ops_user(django_user_model):
    """A member of the ops team: staff and superuser, as in Django admin."""
    return django_user_model.objects.create_superuser("olivia", "olivia@transbot.local", "pw-olivia-123")


@pytest.fixture
def staff_user(django_user_model):
    """Staff without extra permissions: can log in to admin, cannot fail over."""
    return django_user_model.objects.create_user("sam", "sam@transbot.local", "pw-sam-123", is_staff=True)


@pytest.fixture
def outsider(django_user_model):
    """A logged-in user with no company and no staff rights."""
    return django_user_model.objects.create_user("oscar", "oscar@example.com", "pw-oscar-123")


@pytest.fixture
def ops_client(client, ops_user):
    client.force_login(ops_user)
    return client
