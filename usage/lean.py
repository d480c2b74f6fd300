"""What the lean API views share: the plain Django views that serve the product backend's
hottest calls (``usage.api.ingest``, ``usage.entitlements_api.entitlement_check_lean``) without
DRF's request and response machinery, answering exactly as their DRF views do.

A call is taken by a lean view only when it is well formed in the usual way (``Api-Key``
header, a JSON body, a JSON or any ``Accept``); anything else goes to the DRF view, which
also gives the OpenAPI schema. ``lean_or_drf`` wires the two together.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer

from accounts.auth import CompanyAPIKeyAuthentication, api_key_authenticate
from accounts.models import CompanyAPIKey
from core.errors import ApplicationError, api_exception_handler
from usage.parsers import LimitedJSONParser

JSON_TYPES = frozenset({"application/json", "application/json; charset=utf-8", "application/json;charset=utf-8"})
JSON_ACCEPTS = frozenset({"", "*/*", "application/json"})
ALLOW_POST = "POST, OPTIONS"
_renderer = JSONRenderer()

LeanView = Callable[[HttpRequest], HttpResponse]


def lean_applies(request: HttpRequest) -> bool:
    """A POST with an ``Api-Key``, a JSON body and an ``Accept`` the lean views answer."""
    meta = request.META
    return (
        request.method == "POST"
        and meta.get("HTTP_AUTHORIZATION", "")[:8].lower() == "api-key "
        and meta.get("CONTENT_TYPE", "").lower() in JSON_TYPES
        and meta.get("HTTP_ACCEPT", "") in JSON_ACCEPTS
        and meta.get("CONTENT_LENGTH") not in (None, "", "0")
    )


def lean_or_drf(drf_view: Callable[..., HttpResponse], lean: LeanView) -> Callable[..., HttpResponse]:
    """``drf_view`` with the calls ``lean_applies`` to taken by ``lean`` first."""

    @functools.wraps(drf_view)  # keeps csrf_exempt and what the schema generator reads
    def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if lean_applies(request):
            return lean(request)
        return drf_view(request, *args, **kwargs)

    return view


def answer(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> HttpResponse:
    response = HttpResponse(_renderer.render(data), status=status, content_type="application/json")
    response["Allow"] = ALLOW_POST
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def refuse(exc: exceptions.APIException | ApplicationError) -> HttpResponse:
    """``exc`` answered as the DRF view answers it (``core.errors.api_exception_handler``)."""
    if isinstance(exc, exceptions.AuthenticationFailed):
        exc.auth_header = CompanyAPIKeyAuthentication.keyword  # type: ignore[attr-defined]  # DRF reads it
    refused = api_exception_handler(exc, {})
    assert refused is not None  # every APIException and ApplicationError has its answer
    headers = {name: refused[name] for name in ("Retry-After", "WWW-Authenticate") if refused.has_header(name)}
    return answer(refused.data, refused.status_code, headers)


def lean_key(request: HttpRequest, *, address: str | None) -> CompanyAPIKey:
    """The caller's key, checked as ``CompanyAPIKeyAuthentication`` checks it
    (``accounts.auth.api_key_authenticate``), and set as ``request.auth`` as DRF does
    (``core.tenant_scope`` reads it)."""
    raw = request.META["HTTP_AUTHORIZATION"][8:]
    key = api_key_authenticate(raw, address)
    request.auth = key  # type: ignore[attr-defined]  # DRF's attribute, HttpRequest has none
    return key


def read_json(request: HttpRequest) -> Any:
    """The body as the DRF view's parser reads it (size ceiling, checked JSON)."""
    # HttpRequest is the file-like body stream DRF's parsers read.
    return LimitedJSONParser().parse(
        request,  # type: ignore[arg-type]
        "application/json",
        {"request": request, "encoding": "utf-8"},
    )
