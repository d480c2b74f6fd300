"""One shape for every API error, so the frontend can point at the field that is wrong.

    {"error": {"status": 400, "code": "invalid", "message": "...",
               "fields": [{"field": "events.3.quantity", "code": "min_value",
                           "message": "..."}]}}

``fields`` is empty when no single field is to blame. Nested serializer errors are
flattened into dotted paths (list items by index).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class Conflict(exceptions.APIException):
    """The request clashes with what is stored (for example a reused idempotency key)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"

    def __init__(self, detail: str | None = None, *, field: str | None = None):
        super().__init__(detail)
        self.field = field


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The service is temporarily unavailable; try again shortly."
    default_code = "unavailable"


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


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
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
        field = getattr(exc, "field", None)
        fields = [{"field": field, "code": code, "message": message}] if field else []
    response.data = error_body(
        status_code=response.status_code, code=code, message=message, fields=fields
    )
    return response
