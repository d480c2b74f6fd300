"""JSON parsing with a body-size ceiling, so an oversized ingestion request gets 413
before it is read into memory."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from core.errors import PayloadTooLarge


class LimitedJSONParser(JSONParser):
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
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"Malformed JSON: {exc}")
