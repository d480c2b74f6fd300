"""JSON from outside, checked once for what would only fail deep inside: text PostgreSQL
cannot store (NUL, lone UTF-16 surrogates), nesting that would exhaust the stack, and
numbers no column holds.

Python's ``json`` accepts all of these (``"\\u0000"``, ``"\\ud800"``, ``[[[[...]]]]``,
``2**70``); PostgreSQL, the renderer or a recursive walk then fail with a 500. The API's
parser (``core.parsers``) and the Stripe webhook intake read bodies through here, so a
caller is told which field is wrong instead. Imports nothing of ours: DRF's settings load
the parser while ``core.errors`` is still importing DRF.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

# Our deepest legitimate body is a Stripe event (about 10 levels); a batch of usage events is 3.
MAX_JSON_DEPTH = 64
# The range of a PostgreSQL bigint, the widest integer column we have.
MIN_INT, MAX_INT = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class JSONProblem:
    """Where a body is unusable (``field``, a dotted path; empty for the whole body) and why."""

    field: str
    code: str
    message: str


class InvalidJSON(ValueError):
    """A body that is not JSON we can use; ``field`` names where (None: the body as a
    whole), ``code`` says why. The API's parser turns it into a 400 (``core.parsers``)."""

    def __init__(self, message: str, *, code: str = "parse_error", field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field


def _shown(key: str) -> str:
    """A field name fit to be shown back (NUL and surrogates escaped)."""
    return key.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# json.loads joins an escaped pair into one character, so any surrogate left is a lone one.
_SURROGATE = re.compile("[\ud800-\udfff]")
_TEXT_PROBLEMS = {
    "null_character": "NUL characters (\\u0000)",
    "lone_surrogate": "lone UTF-16 surrogates (not valid Unicode)",
}


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "null_character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "lone_surrogate"
    return None


def json_problem(data: Any, *, max_depth: int = MAX_JSON_DEPTH) -> JSONProblem | None:
    """The first problem in document order, or None. Iterative, so any depth is safe."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            code = _text_problem(value)
            if code is not None:
                return JSONProblem(path, code, f"Text may not contain {_TEXT_PROBLEMS[code]}.")
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int):
            if not MIN_INT <= value <= MAX_INT:
                return JSONProblem(path, "number_out_of_range", "Numbers must lie between -2^63 and 2^63-1.")
        elif isinstance(value, float):
            if not math.isfinite(value):
                return JSONProblem(path, "number_out_of_range", "Numbers must be finite.")
        elif isinstance(value, (dict, list)):
            if depth >= max_depth:
                return JSONProblem("", "too_deep", f"JSON may be nested at most {max_depth} levels deep.")
            children: list[tuple[Any, str, int]] = []
            if isinstance(value, dict):
                for key, item in value.items():
                    code = _text_problem(key)
                    if code is not None:
                        message = f"Field names may not contain {_TEXT_PROBLEMS[code]}."
                        return JSONProblem(_join(path, _shown(key)), code, message)
                    children.append((item, _join(path, key), depth + 1))
            else:
                children = [(item, _join(path, str(index)), depth + 1) for index, item in enumerate(value)]
            stack.extend(reversed(children))
    return None


def json_loads_checked(text: str | bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` that raises ``InvalidJSON`` (naming the field) for malformed JSON,
    NaN and Infinity, nesting past ``max_depth``, NUL or lone surrogates in any key or
    string, and integers outside a bigint."""
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise InvalidJSON(f"JSON may be nested at most {max_depth} levels deep.", code="too_deep")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidJSON(f"Malformed JSON: {exc}")
    json_check(data, max_depth=max_depth)
    return data


def json_check(data: Any, *, max_depth: int = MAX_JSON_DEPTH) -> None:
    problem = json_problem(data, max_depth=max_depth)
    if problem is not None:
        raise InvalidJSON(problem.message, code=problem.code, field=problem.field or None)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def json_too_deep(data: Any, *, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """Whether containers nest deeper than ``max_depth`` (iterative, so any depth is safe)."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth >= max_depth:
                return True
            items = value.values() if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in items)
    return False


def _repaired_text(text: str) -> str:
    if _text_problem(text) is None:
        return text
    return _SURROGATE.sub("\ufffd", text.replace("\x00", "\ufffd"))


def json_text_repaired(data: Any, path: str = "") -> tuple[Any, list[str]]:
    """A copy with every NUL and lone surrogate (in keys and strings) replaced by U+FFFD,
    and the paths where that happened. Recursive: check ``json_too_deep`` first."""
    if isinstance(data, str):
        fixed = _repaired_text(data)
        return fixed, ([path] if fixed != data else [])
    if isinstance(data, list):
        out_list, where = [], []
        for index, item in enumerate(data):
            fixed_item, spots = json_text_repaired(item, _join(path, str(index)))
            out_list.append(fixed_item)
            where += spots
        return out_list, where
    if isinstance(data, dict):
        out_dict, where = {}, []
        for key, item in data.items():
            fixed_key = _repaired_text(key)
            if fixed_key != key:
                where.append(_join(path, fixed_key))
            fixed_item, spots = json_text_repaired(item, _join(path, fixed_key))
            out_dict[fixed_key] = fixed_item
            where += spots
        return out_dict, where
    return data, []
