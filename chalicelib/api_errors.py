"""The one error shape of the HTTP API (DESIGN §8).

Every refusal leaves the API as ``{"error": {"code", "message", "details"}}``
with one of the statuses below. Domain code raises ``ApiError`` (or a
subclass) where it knows what went wrong; ``app.py`` only turns it into a
response, so a test can check the status and shape without Chalice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

STATUSES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    422: "invalid",
    429: "too_many_requests",
    431: "headers_too_large",
    500: "internal",
    501: "not_implemented",
    503: "unavailable",
}


@dataclass
class ApiError(Exception):
    """A refusal with its HTTP status; ``retry_after`` (seconds) for 429/503."""

    status: int
    message: str
    code: str = ""
    details: Any = None
    retry_after: int | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"not an API error status: {self.status}")
        if not self.code:
            self.code = STATUSES[self.status]
        if self.status in (429, 503) and self.retry_after is None:
            # A client told to come back must be told when.
            self.retry_after = 1
        super().__init__(self.message)

    def body(self) -> dict:
        """The JSON document sent to the client."""
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "details": self.details,
            }
        }

    def response_headers(self) -> dict[str, str]:
        """Content-Type, Retry-After when set, and any extra headers."""
        headers = {"Content-Type": "application/json", **self.headers}
        if self.retry_after is not None:
            headers["Retry-After"] = str(int(self.retry_after))
        return headers

    def body_json(self) -> str:
        """``body()`` serialized, as a response carries it."""
        return json.dumps(self.body())
