"""The linklog HTTP API as a client sees it: push a batch, pull pages.

503 and 429 are answered by waiting the server's ``Retry-After`` (bounded)
and sending the same batch again, which the server commits at most once.
A server that cannot be reached raises ``Unreachable``; a refusal that
retrying cannot fix raises ``Refused`` with the server's error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterator

import requests

RETRY_STATUSES = (429, 502, 503, 504)
MAX_ATTEMPTS = 6
MAX_WAIT_SECONDS = 30.0
TIMEOUT_SECONDS = (5, 60)


class Unreachable(Exception):
    """The server did not answer (down, no network, or kept answering 503)."""


class Refused(Exception):
    """The server refused the request for good (400, 401, 413, 422, …)."""

    def __init__(self, status: int, code: str, message: str, details=None):
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        super().__init__(f"{status} {code}: {message}")


@dataclass
class Api:
    """One org's API: ``url`` of the server, ``token`` for the org."""

    url: str
    token: str
    session: requests.Session | None = None
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        self.session = self.session or requests.Session()

    def _request(self, method: str, path: str, **kwargs) -> dict:
        headers = {"Authorization": f"Bearer {self.token}"}
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                response = self.session.request(
                    method, self.url + path, headers=headers, timeout=TIMEOUT_SECONDS, **kwargs
                )
            except requests.RequestException as error:
                raise Unreachable(f"{self.url} did not answer: {type(error).__name__}") from None
            if response.status_code in RETRY_STATUSES and attempt < MAX_ATTEMPTS:
                self.sleep(_retry_after(response, attempt))
                continue
            if response.status_code in RETRY_STATUSES:
                raise Unreachable(f"{self.url} answered {response.status_code} {MAX_ATTEMPTS} times")
            if response.status_code >= 400:
                raise _refusal(response)
            return response.json()
        raise AssertionError("unreachable")

    def push(self, batch_id: str, client_id: str, events: list[dict]) -> int:
        """Commit ``events`` as one batch; return its version (the first commit's, on a repeat)."""
        body = {"batch_id": batch_id, "client_id": client_id, "events": events}
        return self._request("POST", "/v1/sync/push", json=body)["version"]

    def pull(self, since: int, limit: int = 1000) -> dict:
        """One page of commits after ``since``: ``{"commits", "head", "has_more"}``."""
        return self._request("GET", "/v1/sync/pull", params={"since": since, "limit": limit})

    def pages(self, since: int) -> Iterator[dict]:
        """Every page after ``since``, following ``has_more``."""
        while True:
            page = self.pull(since)
            yield page
            if page["commits"]:
                since = page["commits"][-1]["version"]
            if not page["has_more"] or not page["commits"]:
                return


def _retry_after(response: requests.Response, attempt: int) -> float:
    try:
        wait = float(response.headers.get("Retry-After", ""))
    except ValueError:
        wait = 0.5 * 2 ** (attempt - 1)
    return min(max(wait, 0.1), MAX_WAIT_SECONDS)


def _refusal(response: requests.Response) -> Refused:
    try:
        error = response.json()["error"]
        return Refused(response.status_code, error.get("code", ""), error.get("message", ""), error.get("details"))
    except (ValueError, KeyError, TypeError):
        return Refused(response.status_code, "http_error", response.text[:200])
