"""Reading JSON exports: the checks the JSON formats share."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.formats.record import ImportFileError


def load(text: str, app: str) -> Any:
    """The JSON document in ``text``; ImportFileError with the line and column if it is none."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ImportFileError(
            f"{app} export is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"
        ) from None


def objects(value: Any, where: str, app: str) -> list[dict]:
    """``value``, which must be a list of objects; ImportFileError naming ``where`` otherwise."""
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ImportFileError(f"not a {app} export: {where} should be a list of objects")
    return value


def text_field(item: dict, name: str) -> str:
    """``item[name]`` as a string ('' when absent or not text)."""
    value = item.get(name)
    return value.strip() if isinstance(value, str) else ""
