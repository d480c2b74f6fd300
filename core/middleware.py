import logging
import re
import sys
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.signals import got_request_exception
from django.http import HttpRequest, HttpResponse

from core import context
from core.context import normalize_ip
from core.outages import outage_part, outage_response

logger = logging.getLogger(__name__)

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


class OutageMiddleware:
    """PostgreSQL, Redis or the broker down: every endpoint answers 503 in the API's error
    shape with ``Retry-After`` (``core.outages``), whatever raised it and whatever DEBUG says.

    A view's exception is answered in ``process_exception``. One raised elsewhere (another
    middleware, a session saved on the way out) has already become Django's 500 page by the
    time it gets here; ``got_request_exception`` noted the part on the request, and the
    page is swapped for the 503."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        part = getattr(request, "_outage_part", None)
        if part is not None and response.status_code >= 500:
            return self._answer(request, part, response)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        part = outage_part(exception)
        if part is None:
            return None
        return self._answer(request, part, None, exception)

    @staticmethod
    def _answer(
        request: HttpRequest, part: str, replaced: HttpResponse | None, exc: BaseException | None = None
    ) -> HttpResponse:
        logger.warning("%s %s: 503, %s unavailable (%s)", request.method, request.path, part, exc or "see above")
        response = outage_response(part)
        if replaced is not None and replaced.has_header("X-Request-ID"):
            response["X-Request-ID"] = replaced["X-Request-ID"]
        return response


def _note_outage(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    exc = sys.exc_info()[1]
    part = outage_part(exc) if exc is not None else None
    if request is not None and part is not None:
        request._outage_part = part  # type: ignore[attr-defined]  # read by OutageMiddleware


got_request_exception.connect(_note_outage, dispatch_uid="core.middleware.note_outage")
