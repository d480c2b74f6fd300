"""JSON parsing with a body-size ceiling, so an oversized ingestion request gets 413
before it is read into memory (and then the API's checks, ``core.parsers``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig

from core.errors import PayloadTooLarge
from core.parsers import CheckedJSONParser


class LimitedJSONParser(CheckedJSONParser):
    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        limit = settings.USAGE_MAX_BODY_BYTES
        request = (parser_context or {}).get("request")
        too_large = PayloadTooLarge(f"The request body is larger than {limit} bytes.")
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0) if request is not None else 0
        except ValueError:
            declared = 0
        if declared > limit:
            raise too_large
        try:
            body = stream.read(limit + 1)
        except RequestDataTooBig:
            raise too_large
        if len(body) > limit:
            raise too_large
        return self.loads(body, encoding=(parser_context or {}).get("encoding"))
