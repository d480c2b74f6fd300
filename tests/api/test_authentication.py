"""Every API call without credentials is 401 and says how to authenticate
(``WWW-Authenticate``), whichever endpoint it is; new endpoints are covered as added."""

from __future__ import annotations

import pytest
from drf_spectacular.generators import EndpointEnumerator
from rest_framework.permissions import AllowAny


def _protected_operations() -> list[tuple[str, str]]:
    operations = []
    for path, _regex, method, callback in EndpointEnumerator().get_api_endpoints():
        view = callback.cls
        if all(p is AllowAny for p in view.permission_classes):
            continue  # sign-in, password reset, the public price calculator
        operations.append((path, method))
    return operations


OPERATIONS = _protected_operations()


def test_the_protected_operations_are_found():
    assert ("/api/v1/regions/", "GET") in OPERATIONS
    assert ("/api/v1/regions/failover/", "POST") in OPERATIONS
    assert ("/api/v1/usage/summary/", "GET") in OPERATIONS


@pytest.mark.django_db
@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_an_anonymous_call_is_401_with_www_authenticate(client, path, method):
    response = client.generic(method, path, "{}", content_type="application/json")
    assert response.status_code == 401, response.content
    assert response.headers.get("WWW-Authenticate"), f"{method} {path} says nothing about how to authenticate"
    assert response.json()["error"]["status"] == 401
