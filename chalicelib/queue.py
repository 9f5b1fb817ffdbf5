"""The queue that wakes the processor: a trigger carries only the org.

Two kinds, one face (``send(org, delay_seconds=0)`` and
``receive(timeout) -> org | None``):

- ``LocalQueue`` for ``make run``: in-process and thread-safe. An org that is
  already waiting is not queued twice, because a cycle looks at the whole
  state anyway; a send while the org is being processed queues it again, so a
  push landing mid-cycle is never forgotten.
- ``SqsQueue`` for AWS (or moto): one message ``{"org": ...}`` per send. The
  Lambda SQS handler consumes it in production; ``receive`` lets the local
  worker consume it too when ``make run`` is pointed at an SQS queue.

``open_queue(setting)`` picks one from ``LINKLOG_QUEUE``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Callable, Protocol
from urllib.parse import urlparse

from chalicelib.config import aws_region
from chalicelib.keys import check_org

# SQS refuses a DelaySeconds above 15 minutes.
MAX_SQS_DELAY_SECONDS = 900
# SQS long polling waits at most 20 seconds per receive.
MAX_SQS_WAIT_SECONDS = 20

log = logging.getLogger(__name__)


class Queue(Protocol):
    def send(self, org: str, delay_seconds: float = 0) -> None:
        """Ask for a cycle of ``org``, no sooner than ``delay_seconds`` from now."""

    def receive(self, timeout: float) -> str | None:
        """The next org due, waiting at most ``timeout`` seconds; None if none."""


def message_body(org: str) -> str:
    """The body of a queue message asking for a cycle of ``org``."""
    return json.dumps({"org": check_org(org)})


def org_of_message(body: str) -> str:
    """The org a ``{"org": ...}`` message names; ValueError if it names none.

    InvalidOrg is a ValueError, so one ``except ValueError`` covers a body
    that is not JSON, not an object, lacks "org" or names an invalid org.
    """
    payload = json.loads(body)
    if not isinstance(payload, dict) or "org" not in payload:
        raise ValueError(f"not a queue message: {body[:200]!r}")
    return check_org(payload["org"])


class LocalQueue:
    """In-process queue of orgs, de-duplicated while they wait, with delays."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._due: dict[str, float] = {}
        self._changed = threading.Condition()

    def send(self, org: str, delay_seconds: float = 0) -> None:
        """Queue ``org``; if it already waits, it keeps the earlier due time."""
        check_org(org)
        if delay_seconds < 0:
            raise ValueError(f"delay_seconds must be >= 0, not {delay_seconds}")
        due = self._clock() + delay_seconds
        with self._changed:
            self._due[org] = min(due, self._due.get(org, due))
            self._changed.notify_all()

    def receive(self, timeout: float) -> str | None:
        """Take the org whose due time came first, waiting up to ``timeout``."""
        deadline = self._clock() + timeout
        with self._changed:
            while True:
                now = self._clock()
                ready = [(due, org) for org, due in self._due.items() if due <= now]
                if ready:
                    _, org = min(ready)
                    del self._due[org]
                    return org
                if now >= deadline:
                    return None
                next_due = min(self._due.values(), default=deadline)
                self._changed.wait(max(0.0, min(deadline, next_due) - now))

    def pending(self) -> list[str]:
        """Orgs waiting, soonest first (for the dev page and tests)."""
        with self._changed:
            return [org for org, _ in sorted(self._due.items(), key=lambda i: i[1])]


class SqsQueue:
    """An SQS queue (AWS, or moto via ``AWS_ENDPOINT_URL``)."""

    def __init__(self, url: str, *, client=None):
        self.url = url
        self._client = client if client is not None else _sqs_client(url)

    def send(self, org: str, delay_seconds: float = 0) -> None:
        """Send one ``{"org": ...}`` message; delays are capped at SQS's 15 minutes."""
        body = message_body(org)
        if delay_seconds < 0:
            raise ValueError(f"delay_seconds must be >= 0, not {delay_seconds}")
        delay = min(MAX_SQS_DELAY_SECONDS, int(round(delay_seconds)))
        self._client.send_message(QueueUrl=self.url, MessageBody=body, DelaySeconds=delay)

    def receive(self, timeout: float) -> str | None:
        """Long-poll one message, delete it and return its org.

        The message is deleted on receipt: a cycle that then dies is caught by
        the sweep (its log is ahead of its snapshot), so nothing waits on a
        redelivery. Malformed messages are deleted and skipped.
        """
        wait = max(0, min(MAX_SQS_WAIT_SECONDS, int(timeout)))
        answer = self._client.receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=1, WaitTimeSeconds=wait
        )
        messages = answer.get("Messages", [])
        if not messages:
            return None
        self._client.delete_message(
            QueueUrl=self.url, ReceiptHandle=messages[0]["ReceiptHandle"]
        )
        try:
            return org_of_message(messages[0]["Body"])
        except ValueError as error:
            log.warning("dropped a malformed queue message: %s", error)
            return None


def _sqs_client(url: str):
    import boto3
    from botocore.config import Config

    # A lost send is harmless (the sweep catches up), so a few quick retries
    # are enough; duplicates are harmless too (the cycle trusts only state).
    config = Config(
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=5,
        read_timeout=MAX_SQS_WAIT_SECONDS + 5,
    )
    return boto3.client("sqs", region_name=_region_of(url) or aws_region(), config=config)


def _region_of(url: str) -> str | None:
    """The region in an AWS queue URL (sqs.eu-west-1.amazonaws.com), else None.

    None: the region the environment names (config.aws_region), which is
    what a moto or other local endpoint needs.
    """
    host = urlparse(url).hostname or ""
    parts = host.split(".")
    if len(parts) >= 4 and parts[0] == "sqs" and parts[-2] == "amazonaws":
        return parts[1]
    return None


def open_queue(setting: str) -> LocalQueue | SqsQueue:
    """The queue ``LINKLOG_QUEUE`` names: ``local``, or an SQS queue URL."""
    if setting == "local":
        return LocalQueue()
    parsed = urlparse(setting) if isinstance(setting, str) else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(
            f"LINKLOG_QUEUE must be 'local' or an SQS queue URL "
            f"(https://sqs.REGION.amazonaws.com/ACCOUNT/NAME), not {setting!r}"
        )
    if len([p for p in parsed.path.split("/") if p]) != 2:
        raise ValueError(
            f"an SQS queue URL ends in /ACCOUNT/NAME; {setting!r} does not"
        )
    return SqsQueue(setting)
