"""Query parameters as clients send them (strings), parsed or refused with a 422."""

from __future__ import annotations

import re

from chalicelib.api_errors import ApiError

# An unpaired surrogate has no UTF-8 form; SQLite cannot take it as text.
_SURROGATE = re.compile("[\ud800-\udfff]")


def problem(name: str, message: str, kind: str = "value_error") -> dict:
    """One bad field, in the shape validation errors have."""
    return {"path": name, "message": message, "type": kind}


def invalid_fields(problems: list[dict]) -> ApiError:
    """The 422 naming every bad field at once."""
    paths = ", ".join(found["path"] for found in problems)
    return ApiError(422, f"invalid fields: {paths}", details=problems)


def invalid_field(name: str, message: str, kind: str = "value_error") -> ApiError:
    """The 422 for one bad field."""
    return invalid_fields([problem(name, message, kind)])


def integer(params: dict, name: str, default: int) -> int:
    """The base-10 integer ``params[name]``, ``default`` when absent."""
    raw = params.get(name)
    if raw is None:
        return default
    try:
        return int(raw, 10)
    except ValueError:
        raise invalid_field(name, "must be an integer", "int_parsing") from None


def check_text(name: str, value: str) -> str:
    """``value`` unchanged if SQLite can hold it as text; else the 422 naming ``name``.

    NUL ends a string in SQLite's C interface (a query or full-text search
    would stop there) and an unpaired surrogate cannot be encoded, so
    neither may reach the database.
    """
    if "\x00" in value or _SURROGATE.search(value):
        raise invalid_field(name, "must not contain NUL or unpaired surrogate characters")
    return value


def checked_query(params: dict) -> dict:
    """The query-string parameters, each checked with check_text."""
    for name, value in params.items():
        check_text(name, value)
    return params


def boolean(params: dict, name: str) -> bool | None:
    """``params[name]`` as ``true`` or ``false``; None when absent."""
    raw = params.get(name)
    if raw is None:
        return None
    if raw not in ("true", "false"):
        raise invalid_field(name, "must be true or false", "bool_parsing")
    return raw == "true"
