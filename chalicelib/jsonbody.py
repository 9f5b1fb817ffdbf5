"""JSON request bodies: parsed, or refused with a 400 in the one error shape.

Python's JSON parser recurses once per level of nesting, so a body nested
a thousand deep raises RecursionError, which no route expects. The depth is
therefore measured before parsing, and anything deeper than any request of
this API needs is refused as a client error.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

from chalicelib.api_errors import ApiError

# A push is four levels deep (body, events, event, args) and a query body
# one; 32 leaves room for any honest client.
MAX_JSON_DEPTH = 32

# A JSON string, escapes included: brackets inside one do not nest.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NESTING = {"[": 1, "{": 1, "]": -1, "}": -1}
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")


def nesting_depth(text: str) -> int:
    """How deeply the arrays and objects of the JSON ``text`` nest (0 for a scalar).

    Exact for valid JSON; for invalid JSON it is a figure the parser will
    refuse anyway.
    """
    brackets = _NOT_BRACKETS.sub("", _STRING.sub("", text))
    return max(accumulate(_NESTING[bracket] for bracket in brackets), default=0)


def parse_json_body(body: bytes) -> Any:
    """The JSON document in ``body``.

    Raises ApiError 400: ``malformed_json`` when it is not UTF-8 JSON (NaN
    and Infinity included, which JSON does not have), ``json_too_deep`` when
    arrays and objects nest more than MAX_JSON_DEPTH levels.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _malformed(error) from None
    depth = nesting_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise ApiError(
            400,
            f"the body nests {depth} levels deep; at most {MAX_JSON_DEPTH} are accepted",
            code="json_too_deep",
            details={"limit_depth": MAX_JSON_DEPTH},
        )
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except ValueError as error:
        raise _malformed(error) from None


def _malformed(error: Exception) -> ApiError:
    return ApiError(400, f"body is not valid JSON: {error}", code="malformed_json")


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")
