"""How the product backend authenticates: ``Authorization: Api-Key <prefix>.<secret>``.

The key resolves the company; everything the request does is scoped to it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request
from rest_framework.views import APIView
from rest_framework_api_key.permissions import KeyParser

from accounts.models import CompanyAPIKey

if TYPE_CHECKING:
    from drf_spectacular.openapi import AutoSchema

# Recording every use would be a write per request; once a minute is enough to answer
# "is this key still in use?".
LAST_USED_RESOLUTION = timedelta(minutes=1)


class CompanyAPIKeyAuthentication(authentication.BaseAuthentication):
    """Resolves ``request.auth`` to a valid, unrevoked, unexpired ``CompanyAPIKey``.

    A request without an ``Api-Key`` header is left to the other authenticators; one with
    a wrong key is refused outright (401), never silently treated as anonymous."""

    keyword = "Api-Key"
    key_parser = KeyParser()

    def authenticate(self, request: Request) -> tuple[AnonymousUser, CompanyAPIKey] | None:
        raw = self.key_parser.get(request)
        if not raw:
            return None
        prefix, _, _ = raw.partition(".")
        key = (
            CompanyAPIKey.objects.select_related("company", "company__tier")
            .filter(prefix=prefix, revoked=False)
            .first()
        )
        if key is None or key.has_expired or not key.is_valid(raw):
            raise exceptions.AuthenticationFailed("Invalid, revoked or expired API key.")
        now = timezone.now()
        if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
            CompanyAPIKey.objects.filter(pk=key.pk).update(last_used_at=now)
            key.last_used_at = now
        return AnonymousUser(), key

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class HasCompanyAPIKey(permissions.BasePermission):
    def has_permission(self, request: Request, view: APIView) -> bool:
        return isinstance(request.auth, CompanyAPIKey)


class IsCompanyUserOrAPIKey(permissions.BasePermission):
    """A logged-in user (session or token) or a company API key."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        return isinstance(request.auth, CompanyAPIKey) or bool(
            request.user and request.user.is_authenticated
        )


class CompanyAPIKeyScheme(OpenApiAuthenticationExtension):
    """Tells the OpenAPI schema how a company API key is sent."""

    target_class = CompanyAPIKeyAuthentication
    name = "CompanyAPIKey"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <prefix>.<secret>`: a company API key (created in admin, shown once).",
        }
