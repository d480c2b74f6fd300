"""Fixtures every test folder can use. App-specific fixtures live in tests/<app>/conftest.py.

On PostgreSQL the suite runs as production does, with two roles: the test database is
created and migrated by the role ``DATABASE_URL`` (or ``DATABASE_MIGRATE_URL``) names, the
owner; then the tests connect as an application role that owns nothing
(``<test database>_app``, made here with ``trans_bot.db_roles``' grants), so row-level
security and the audit trail's protections hold in every test. Flushes and migrations
switch to the owner (``core.db_owner``). Test code runs in the ops scope (every row); a
request made by a test runs in its caller's scope (``core.tenant_scope``).
"""

import secrets

import pytest
from django.db.backends.signals import connection_created

from core import tenant_scope

tenant_scope.set_process_scope(tenant_scope.ops("tests"))


def _allow_test_flush(sender, connection, **kwargs):
    # Transactional tests end with a TRUNCATE of every table; the audit trigger allows
    # that only to a superuser session that asks for maintenance (see audit migration 0002).
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET trans_bot.audit_maintenance = 'on'")


connection_created.connect(_allow_test_flush, dispatch_uid="allow_test_flush")


def _create_app_role(connection) -> tuple[str, str]:
    """The application role for this test database, with a fresh password and the grants
    production gives it. Roles are cluster-wide: the name follows the database's."""
    from trans_bot.db_roles import grant_statements

    database = connection.settings_dict["NAME"]
    role, password = f"{database}_app"[:63], secrets.token_urlsafe(24)
    quoted = connection.ops.quote_name(role)
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        owner = cursor.fetchone()[0]
        cursor.execute(
            f"DO $$ BEGIN CREATE ROLE {quoted}; "
            "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        )
        cursor.execute(
            f"ALTER ROLE {quoted} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE PASSWORD %s", [password]
        )
        cursor.execute(f"GRANT CONNECT, TEMPORARY ON DATABASE {connection.ops.quote_name(database)} TO {quoted}")
        for statement in grant_statements(app_role=role, owner_role=owner):
            cursor.execute(statement)
    return role, password


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings):
    """The test database is created and migrated by the owner: DATABASE_MIGRATE_URL's role
    when set, else DATABASE_URL's."""
    from django.conf import settings
    from django.db import connections

    owner = getattr(settings, "DATABASE_OWNER", None)
    if owner and connections["default"].vendor == "postgresql":
        connections["default"].settings_dict.update({k: owner.get(k) for k in ("USER", "PASSWORD", "HOST", "PORT")})


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's test database, created and migrated by the owner; then every test
    connects as the application role."""
    from django.conf import settings
    from django.db import connections

    connection = connections["default"]
    if connection.vendor != "postgresql":
        yield
        return
    owner = {k: connection.settings_dict.get(k) for k in ("USER", "PASSWORD", "HOST", "PORT")}
    saved_owner_setting = getattr(settings, "DATABASE_OWNER", None)
    with django_db_blocker.unblock():
        role, password = _create_app_role(connection)
    connection.close()
    settings.DATABASE_OWNER = owner
    connection.settings_dict.update(USER=role, PASSWORD=password)
    try:
        yield
    finally:
        # pytest-django drops the test database next: the owner does that.
        connection.close()
        connection.settings_dict.update(owner)
        settings.DATABASE_OWNER = saved_owner_setting


@pytest.fixture
def migrator(transactional_db, django_db_use_migrations):
    """django-test-migrations' migrator, as the owner: migrations change the schema."""
    from django_test_migrations.migrator import Migrator

    from core.db_owner import as_owner

    if not django_db_use_migrations:
        pytest.skip("--nomigrations was specified")
    with as_owner():
        migrator = Migrator("default")
        try:
            yield migrator
        finally:
            migrator.reset()


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
