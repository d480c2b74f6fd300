import re
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from core import context
from core.context import normalize_ip

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def client_ip(request: HttpRequest) -> str | None:
    """REMOTE_ADDR; behind our own proxy, the hop that proxy appended to X-Forwarded-For
    (the rightmost: everything left of it is whatever the client claimed)."""
    if settings.TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        hop = normalize_ip(forwarded.rsplit(",", 1)[-1]) if forwarded else None
        if hop:
            return hop
    return normalize_ip(request.META.get("REMOTE_ADDR"))


class RequestContextMiddleware:
    """Gives every request an id (the caller's ``X-Request-ID`` when it is sane) and
    binds it, with the client address, for the audit trail; echoes the id back."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        given = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]  # our own attribute, HttpRequest has none
        token = context.bind(context.RequestContext(request_id=request_id, ip=client_ip(request), request=request))
        try:
            response = self.get_response(request)
        finally:
            context.reset(token)
        response["X-Request-ID"] = request_id
        return response
