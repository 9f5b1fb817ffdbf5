"""Query parameters as clients send them (strings), parsed or refused with a 422."""

from __future__ import annotations

from chalicelib.api_errors import ApiError


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


def boolean(params: dict, name: str) -> bool | None:
    """``params[name]`` as ``true`` or ``false``; None when absent."""
    raw = params.get(name)
    if raw is None:
        return None
    if raw not in ("true", "false"):
        raise invalid_field(name, "must be true or false", "bool_parsing")
    return raw == "true"
