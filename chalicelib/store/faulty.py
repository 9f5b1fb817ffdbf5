"""A store that fails on cue, for testing the log, the lease and the processor.

It wraps a real store and, before or after passing a request on, raises the
errors a real S3 raises under load:

- ``TRANSIENT``: a 5xx or timeout before the request reached the store;
  nothing happened.
- ``LOST_RESPONSE``: the write or delete happened, but the answer was lost:
  the caller gets Transient and must find out by reading. This is also what
  S3Store raises when the SDK's retry of a lost conditional put earns a 412,
  so a store's PreconditionFailed is always certain (docs/decisions.md).
- ``CONFLICT``: 409, a concurrent conditional write; nothing happened.

Which requests fail is decided by a ``plan`` (a callable ``(kind, key, n)``
returning a Fault or None, where ``n`` counts requests of that kind from 1),
else by a draw at ``fail_rate`` from a random generator seeded with
``seed``, so a run with the same requests in the same order fails the same
way.
"""

from __future__ import annotations

import enum
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from chalicelib.store.base import (
    Conflict,
    ObjectInfo,
    ObjectStore,
    StoreError,
    StoredObject,
    Transient,
)


class Fault(enum.Enum):
    TRANSIENT = "transient"
    LOST_RESPONSE = "lost_response"
    CONFLICT = "conflict"


@dataclass(frozen=True)
class InjectedFault:
    """One failure the store made up: the n-th request of ``kind``, on ``key``."""

    kind: str
    key: str
    n: int
    fault: Fault


Plan = Callable[[str, str, int], "Fault | None"]


def _possible_faults(kind: str, conditional: bool) -> tuple[Fault, ...]:
    if kind in ("get", "head", "list"):
        return (Fault.TRANSIENT,)
    if not conditional:
        return (Fault.TRANSIENT, Fault.LOST_RESPONSE)
    return (Fault.TRANSIENT, Fault.LOST_RESPONSE, Fault.CONFLICT)


class FaultyStore:
    """Wraps ``inner`` and fails requests per ``plan`` or at ``fail_rate`` (0.0–1.0)."""

    def __init__(
        self,
        inner: ObjectStore,
        *,
        fail_rate: float = 0.0,
        seed: int = 0,
        plan: Plan | None = None,
    ):
        if not 0.0 <= fail_rate <= 1.0:
            raise ValueError(f"fail_rate must be between 0 and 1, not {fail_rate}")
        self.inner = inner
        self.fail_rate = fail_rate
        self.plan = plan
        self.injected: list[InjectedFault] = []
        self._random = random.Random(seed)
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()

    @property
    def snapshot_codec(self) -> str:
        return self.inner.snapshot_codec

    def _fault_for(self, kind: str, key: str, conditional: bool = False) -> Fault | None:
        possible = _possible_faults(kind, conditional)
        with self._lock:
            self._seen[kind] += 1
            n = self._seen[kind]
            fault = self.plan(kind, key, n) if self.plan is not None else None
            if fault is None and self.fail_rate and self._random.random() < self.fail_rate:
                fault = self._random.choice(possible)
            if fault is None:
                return None
            if fault not in possible:
                raise ValueError(f"{fault} cannot happen to a {kind} request")
            self.injected.append(InjectedFault(kind=kind, key=key, n=n, fault=fault))
            return fault

    @staticmethod
    def _fail_before(fault: Fault | None, key: str) -> None:
        if fault is Fault.TRANSIENT:
            raise Transient(key, "injected fault: 503 before the request")
        if fault is Fault.CONFLICT:
            raise Conflict(key, "injected fault: 409 concurrent conditional write")

    @staticmethod
    def _fail_after(fault: Fault | None, key: str) -> None:
        if fault is Fault.LOST_RESPONSE:
            raise Transient(key, "injected fault: the write landed, its response was lost")

    def get(self, key: str) -> StoredObject:
        self._fail_before(self._fault_for("get", key), key)
        return self.inner.get(key)

    def download(self, key: str, into: BinaryIO) -> ObjectInfo:
        """A failed download is cut off after its first piece, as when a
        connection drops mid-body; the caller holds a prefix."""
        if self._fault_for("get", key) is None:
            return self.inner.download(key, into)
        self.inner.download(key, _FirstPieceOnly(into, key))
        raise Transient(key, "injected fault: the connection dropped mid-body")

    def head(self, key: str) -> ObjectInfo:
        self._fail_before(self._fault_for("head", key), key)
        return self.inner.head(key)

    def list(self, prefix, *, start_after=None, limit=1000) -> list[ObjectInfo]:
        self._fail_before(self._fault_for("list", prefix), prefix)
        return self.inner.list(prefix, start_after=start_after, limit=limit)

    def put(self, key, body, *, if_absent=False, if_match=None) -> str:
        fault = self._fault_for("put", key, conditional=if_absent or if_match is not None)
        self._fail_before(fault, key)
        try:
            etag = self.inner.put(key, body, if_absent=if_absent, if_match=if_match)
        except StoreError:
            # With the response lost, the caller cannot tell a refused write
            # from a landed one either.
            if fault is None:
                raise
            etag = None
        self._fail_after(fault, key)
        return etag

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        fault = self._fault_for("delete", key, conditional=if_match is not None)
        self._fail_before(fault, key)
        try:
            self.inner.delete(key, if_match=if_match)
        except StoreError:
            if fault is None:
                raise
        self._fail_after(fault, key)


class _FirstPieceOnly:
    """Passes on the first piece of a download, then fails as a dropped connection."""

    def __init__(self, into: BinaryIO, key: str):
        self.into = into
        self.key = key
        self.passed = False

    def write(self, piece) -> None:
        if self.passed:
            raise Transient(self.key, "injected fault: the connection dropped mid-body")
        self.into.write(piece)
        self.passed = True
