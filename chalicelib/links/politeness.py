"""How many pages a cycle fetches at once: in all, and per origin.

A cycle's link processing is mostly waiting on other servers, so it runs
CONCURRENCY fetches at a time, far more than the CPUs. But a saved library
often comes from a few sites, and an import of 500 links to one blog must
not hammer that blog: no more than PER_ORIGIN fetches run at once against
one origin (scheme, host, port), and a cycle takes no more links of one
origin than those few slots can finish within its budget.

- ``origin_of``: the origin a link's URL names.
- ``choose``: the links a cycle takes, oldest first, within both caps.
- ``OriginSlots``: hands out the chosen links to start, at most
  PER_ORIGIN running per origin.

Politeness is judged by the saved URL; a redirect to another origin is not
counted against that one.
"""

from __future__ import annotations

from collections import Counter, deque
from typing import Iterable
from urllib.parse import urlsplit

from chalicelib.links.outcome import LinkJob
from chalicelib.links.urls import DEFAULT_PORTS

CONCURRENCY = 16
PER_ORIGIN = 4

Origin = tuple[str, str, int]


def origin_of(url: str) -> Origin:
    """``(scheme, host, port)`` of ``url``, lower case, default port filled in.

    A URL that does not parse is its own origin (its fetch fails at once).
    """
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port or DEFAULT_PORTS.get(scheme, 0)
        return scheme, (parts.hostname or "").lower(), port
    except ValueError:
        return "", url, 0


def choose(jobs: Iterable[LinkJob], *, most: int, most_per_origin: int) -> list[LinkJob]:
    """The first jobs, in order, keeping at most ``most`` in all and at most
    ``most_per_origin`` of any one origin; the rest wait for a later cycle."""
    taken: list[LinkJob] = []
    per_origin: Counter[Origin] = Counter()
    for job in jobs:
        if len(taken) >= most:
            break
        origin = origin_of(job.url)
        if per_origin[origin] < most_per_origin:
            per_origin[origin] += 1
            taken.append(job)
    return taken


class OriginSlots:
    """The jobs waiting to start, released at most ``per_origin`` at a time
    per origin, each origin's in the order given. Not thread-safe: one
    scheduling loop takes and gives back."""

    def __init__(self, jobs: Iterable[LinkJob], per_origin: int = PER_ORIGIN):
        if per_origin < 1:
            raise ValueError(f"per_origin must be at least 1, not {per_origin}")
        self._per_origin = per_origin
        self._waiting: dict[Origin, deque[LinkJob]] = {}
        self._order: list[Origin] = []
        for job in jobs:
            origin = origin_of(job.url)
            if origin not in self._waiting:
                self._waiting[origin] = deque()
                self._order.append(origin)
            self._waiting[origin].append(job)
        self._running: Counter[Origin] = Counter()

    def take(self) -> LinkJob | None:
        """The next job whose origin has a free slot, or None; it counts as
        running until ``finished`` is called for it."""
        for origin in self._order:
            queue = self._waiting[origin]
            if queue and self._running[origin] < self._per_origin:
                self._running[origin] += 1
                return queue.popleft()
        return None

    def finished(self, job: LinkJob) -> None:
        """Free the slot ``job`` held."""
        self._running[origin_of(job.url)] -= 1
