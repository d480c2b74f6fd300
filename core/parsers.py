"""The API's JSON parser (DRF's ``DEFAULT_PARSER_CLASSES``): every view reads its body
through ``core.json_input``, so NUL, lone surrogates, deep nesting and out-of-range
numbers are a 400 naming the field, on every endpoint, before any view sees them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework.exceptions import ErrorDetail, ParseError, ValidationError
from rest_framework.parsers import JSONParser

from core.json_input import InvalidJSON, json_loads_checked


class CheckedJSONParser(JSONParser):
    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        return self.loads(stream.read(), encoding=(parser_context or {}).get("encoding"))

    @staticmethod
    def loads(body: bytes, *, encoding: str | None = None) -> Any:
        encoding = encoding or settings.DEFAULT_CHARSET
        try:
            return json_loads_checked(body.decode(encoding))
        except (LookupError, UnicodeDecodeError) as exc:
            raise ParseError(f"The body is not {encoding} text: {exc}")
        except InvalidJSON as exc:
            if exc.field:  # a 400 naming the field, like a serializer's
                raise ValidationError({exc.field: [ErrorDetail(exc.message, code=exc.code)]})
            raise ParseError(exc.message, code=exc.code)  # the body as a whole
