"""What went wrong, said once: services raise ``ApplicationError``; the API answers it.

An ``ApplicationError`` carries a stable machine ``code``, a ``message`` for people, an
optional ``field`` to blame, and a ``kind`` that says in domain terms what went wrong
(invalid, not found, forbidden, conflict, too large, unavailable, upstream failure).
Services never import DRF and never pick an HTTP status: ``HTTP_STATUS`` below is the one
place a kind becomes a status, used by ``api_exception_handler`` (DRF's EXCEPTION_HANDLER)
and by plain Django views through ``error_response``.

Every API error has one shape, so the frontend can point at the field that is wrong.

    {"error": {"status": 400, "code": "invalid", "message": "...",
               "fields": [{"field": "events.3.quantity", "code": "min_value",
                           "message": "..."}]}}

``fields`` is empty when no single field is to blame. Nested serializer errors are
flattened into dotted paths (list items by index). An invalid-kind error answers like a
serializer error on its field: code ``invalid``, message prefixed by the field.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback


class ErrorKind(StrEnum):
    """What went wrong. The value is the default ``code`` of an error of that kind."""

    INVALID = "invalid"  # the input is wrong; sending it again will not help
    NOT_FOUND = "not_found"
    FORBIDDEN = "permission_denied"  # who is asking may not do this
    CONFLICT = "conflict"  # the request clashes with what is stored or with the current state
    REFUSED = "refused"  # well-formed, but a business rule refuses it (a hard limit reached)
    TOO_LARGE = "payload_too_large"
    UNAVAILABLE = "unavailable"  # try again shortly
    UPSTREAM = "upstream_error"  # a provider we depend on refused; trying again will not help


HTTP_STATUS: dict[ErrorKind, int] = {
    ErrorKind.INVALID: 400,
    ErrorKind.FORBIDDEN: 403,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.CONFLICT: 409,
    ErrorKind.TOO_LARGE: 413,
    ErrorKind.REFUSED: 422,
    ErrorKind.UPSTREAM: 502,
    ErrorKind.UNAVAILABLE: 503,
}


class ApplicationError(Exception):
    """Something the caller should be told about, in domain terms.

    Subclasses set ``kind``, ``code`` and ``message`` as class defaults; an instance may
    override any of them. Without a code of its own, the code is the kind's value."""

    kind: ErrorKind = ErrorKind.INVALID
    code: str = ""
    message: str = "The request cannot be carried out."
    field: str | None = None

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        field: str | None = None,
        kind: ErrorKind | None = None,
    ) -> None:
        self.kind = kind or type(self).kind
        self.code = code or type(self).code or self.kind.value
        self.message = message or type(self).message
        self.field = field
        super().__init__(self.message)

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.kind]


class Conflict(ApplicationError):
    """The request clashes with what is stored (for example a reused idempotency key)."""

    kind = ErrorKind.CONFLICT
    message = "The request conflicts with the current state."


class PayloadTooLarge(ApplicationError):
    kind = ErrorKind.TOO_LARGE
    message = "The request body is too large."


class ServiceUnavailable(ApplicationError):
    kind = ErrorKind.UNAVAILABLE
    message = "The service is temporarily unavailable; try again shortly."


def _flatten(detail: Any, prefix: str = "") -> list[dict[str, str]]:
    if isinstance(detail, dict):
        if set(detail) == {"message", "code"} and not isinstance(detail["message"], (dict, list)):
            return [{"field": prefix, "code": str(detail["code"]), "message": str(detail["message"])}]
        out: list[dict[str, str]] = []
        for key, value in detail.items():
            name = "" if key == "non_field_errors" else str(key)
            out += _flatten(value, f"{prefix}.{name}" if prefix and name else prefix or name)
        return out
    if isinstance(detail, list):
        if all(isinstance(item, dict) and set(item) == {"message", "code"} for item in detail):
            return [e for item in detail for e in _flatten(item, prefix)]
        out = []
        for index, value in enumerate(detail):
            if value:
                out += _flatten(value, f"{prefix}.{index}" if prefix else str(index))
        return out
    return [{"field": prefix, "code": "invalid", "message": str(detail)}]


def error_body(
    *, status_code: int, code: str, message: str, fields: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    return {
        "error": {"status": status_code, "code": code, "message": message, "fields": fields or []}
    }


def application_error_body(exc: ApplicationError) -> dict[str, Any]:
    """The error shape for an ``ApplicationError`` (the status is ``exc.http_status``)."""
    blamed = [{"field": exc.field or "", "code": exc.code, "message": exc.message}]
    if exc.kind is ErrorKind.INVALID:
        message = f"{exc.field}: {exc.message}" if exc.field else exc.message
        return error_body(status_code=exc.http_status, code="invalid", message=message, fields=blamed)
    return error_body(
        status_code=exc.http_status, code=exc.code, message=exc.message, fields=blamed if exc.field else []
    )


def error_response(exc: ApplicationError) -> JsonResponse:
    """An ``ApplicationError`` as a response, for plain Django views outside DRF."""
    return JsonResponse(application_error_body(exc), status=exc.http_status)


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, ApplicationError):
        set_rollback()  # as DRF does for its own errors (ATOMIC_REQUESTS)
        return Response(application_error_body(exc), status=exc.http_status)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response

    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.get_full_details())
        first = fields[0] if fields else None
        message = (
            f"{first['field']}: {first['message']}" if first and first["field"] else
            first["message"] if first else "Invalid input."
        )
        code = "invalid"
    else:
        full = exc.get_full_details()
        message = str(full.get("message", exc.detail)) if isinstance(full, dict) else str(exc.detail)
        code = str(full.get("code", exc.default_code)) if isinstance(full, dict) else exc.default_code
        fields = []
    response.data = error_body(
        status_code=response.status_code, code=code, message=message, fields=fields
    )
    return response
