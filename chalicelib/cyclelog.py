"""What one processor cycle did and cost, as one JSON log line (DESIGN §10).

The line is also in CloudWatch's embedded metric format, so the same
``print`` that lands it in the Lambda log turns its figures into metrics
with no agent and no extra request.

A cycle is judged by its own delay (everything but link processing, which
depends on the pages' servers): under 100 ms optimal, under 300 acceptable,
under 500 slow, up to 1000 warning, above that critical. A cycle at or above
300 ms counts as slow; three slow cycles among the last ten raise a warning.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict, deque
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Callable

from chalicelib.store.base import REQUEST_KINDS, CountingStore, ObjectStore

TIMINGS = (
    "lease",
    "snapshot_get",
    "deserialize",
    "apply",
    "process",
    "commit",
    "serialize",
    "snapshot_put",
    "pack",
    "total",
)

SLOW_MS = 300.0
SLOW_WINDOW = 10
SLOW_WARN_COUNT = 3
METRICS_NAMESPACE = "linklog"


class MeteredStore(CountingStore):
    """A per-cycle CountingStore that also adds up time and bytes per kind.

    Snapshot get and put time are what separate "snapshot get" from
    "deserialize" (and "serialize" from "snapshot put") in the log line
    without reaching inside the snapshot code. It also remembers the etag
    of every object the cycle put, got or listed (``etag_seen``): a kept
    state names its head commit by it (chalicelib.keptstate).
    """

    def __init__(self, inner: ObjectStore, clock: Callable[[], float] = time.perf_counter):
        super().__init__(inner)
        self._clock = clock
        self._seconds: dict[str, float] = {kind: 0.0 for kind in REQUEST_KINDS}
        self.bytes_read = 0
        self.bytes_written = 0
        self._etags: dict[str, str] = {}

    def etag_seen(self, key: str) -> str | None:
        """The etag of ``key`` as this cycle last put, got or listed it."""
        with self._lock:
            return self._etags.get(key)

    def _saw(self, key: str, etag: str) -> None:
        with self._lock:
            self._etags[key] = etag

    def seconds(self, kind: str) -> float:
        with self._lock:
            return self._seconds[kind]

    def _timed(self, kind: str, started: float) -> None:
        with self._lock:
            self._seconds[kind] += self._clock() - started

    def get(self, key):
        started = self._clock()
        try:
            stored = super().get(key)
        finally:
            self._timed("get", started)
        with self._lock:
            self.bytes_read += len(stored.body)
        self._saw(key, stored.etag)
        return stored

    def download(self, key, into):
        started = self._clock()
        try:
            info = super().download(key, into)
        finally:
            self._timed("get", started)
        with self._lock:
            self.bytes_read += info.size
        self._saw(key, info.etag)
        return info

    def head(self, key):
        started = self._clock()
        try:
            return super().head(key)
        finally:
            self._timed("head", started)

    def put(self, key, body, *, if_absent=False, if_match=None):
        started = self._clock()
        with self._lock:
            self.bytes_written += len(body)
        try:
            etag = super().put(key, body, if_absent=if_absent, if_match=if_match)
        finally:
            self._timed("put", started)
        self._saw(key, etag)
        return etag

    def delete(self, key, *, if_match=None):
        started = self._clock()
        try:
            super().delete(key, if_match=if_match)
        finally:
            self._timed("delete", started)

    def list(self, prefix, *, start_after=None, limit=1000):
        started = self._clock()
        try:
            listed = super().list(prefix, start_after=start_after, limit=limit)
        finally:
            self._timed("list", started)
        for info in listed:
            self._saw(info.key, info.etag)
        return listed


@dataclass
class CycleRecord:
    """The figures of one cycle; ``timings_ms`` keys are TIMINGS.

    ``version_before`` is the log head the cycle found (its restore plus the
    delta), ``version_after`` the version its state reached; the restored
    snapshot's version is ``snapshot_restored`` (None when it replayed, or
    when ``warm``: it resumed the state its container kept from the org's
    last cycle, chalicelib.keptstate).
    """

    org: str
    holder: str
    outcome: str = ""
    epoch: int | None = None
    version_before: int = 0
    version_after: int = 0
    snapshot_restored: int | None = None
    warm: bool = False
    snapshot_written: int | None = None
    # What the snapshot step wrote: "full" or "delta" (None: nothing), the
    # deltas on its base after it, and the delta's bytes and pages.
    snapshot_kind: str | None = None
    chain_length: int = 0
    delta_bytes: int = 0
    pages_changed: int | None = None
    commits_applied: int = 0
    events_applied: int = 0
    commits_written: int = 0
    links_started: int = 0
    links_done: int = 0
    links_failed: int = 0
    links_unfinished: int = 0
    work_left: bool = False
    bytes_read: int = 0
    bytes_written: int = 0
    requests: dict[str, int] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=lambda: dict.fromkeys(TIMINGS, 0.0))
    error: str | None = None

    def add_time(self, name: str, seconds: float) -> None:
        self.timings_ms[name] = round(self.timings_ms[name] + seconds * 1000, 3)

    def delay_ms(self) -> float:
        """The cycle's own cost: its total time less the link processing."""
        return max(0.0, self.timings_ms["total"] - self.timings_ms["process"])


def classify(delay_ms: float) -> str:
    """optimal / acceptable / slow / warning / critical, by the cycle's delay."""
    if delay_ms < 100:
        return "optimal"
    if delay_ms < SLOW_MS:
        return "acceptable"
    if delay_ms < 500:
        return "slow"
    if delay_ms <= 1000:
        return "warning"
    return "critical"


class SlowCycleWatch:
    """Remembers whether each of the last ten cycles was slow."""

    def __init__(self, window: int = SLOW_WINDOW, warn_count: int = SLOW_WARN_COUNT):
        self._recent: deque[bool] = deque(maxlen=window)
        self._warn_count = warn_count
        self._lock = threading.Lock()

    def observe(self, delay_ms: float) -> bool:
        """Record one cycle; True when enough recent cycles were slow to warn."""
        with self._lock:
            self._recent.append(delay_ms >= SLOW_MS)
            return sum(self._recent) >= self._warn_count


# One watch per process: a warm Lambda container sees its cycles in a row.
process_watch = SlowCycleWatch()


class RecentCycles:
    """The last cycle of each org run in this process, for ``GET /v1/stats``.

    Only a process that runs cycles knows them: the dev server, where the
    worker shares the API's process. On Lambda the processor is another
    function, so the API's stats show none.
    """

    def __init__(self, max_orgs: int = 1000):
        self._records: OrderedDict[str, dict] = OrderedDict()
        self._max_orgs = max_orgs
        self._lock = threading.Lock()

    def remember(self, record: CycleRecord) -> None:
        with self._lock:
            self._records.pop(record.org, None)
            self._records[record.org] = asdict(record)
            while len(self._records) > self._max_orgs:
                self._records.popitem(last=False)

    def last(self, org: str) -> dict | None:
        """The figures of the org's last cycle here, or None."""
        with self._lock:
            return self._records.get(org)


process_cycles = RecentCycles()


def log_line(
    record: CycleRecord,
    *,
    watch: SlowCycleWatch = process_watch,
    wall_now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
) -> str:
    """The cycle's one JSON line, in CloudWatch embedded metric format.

    The org is a property, not a dimension: a dimension per org would be
    a metric per org, which costs per org and says little.
    """
    delay = record.delay_ms()
    doc = asdict(record)
    doc["delay_ms"] = round(delay, 3)
    doc["level"] = classify(delay)
    doc["slow_streak"] = watch.observe(delay)
    doc["CycleMs"] = record.timings_ms["total"]
    doc["CycleDelayMs"] = round(delay, 3)
    doc["LinksDone"] = record.links_done
    doc["LinksFailed"] = record.links_failed
    doc["EventsApplied"] = record.events_applied
    doc["StoreRequests"] = sum(record.requests.values())
    doc["_aws"] = {
        "Timestamp": int(wall_now().timestamp() * 1000),
        "CloudWatchMetrics": [
            {
                "Namespace": METRICS_NAMESPACE,
                "Dimensions": [["outcome"]],
                "Metrics": [
                    {"Name": "CycleMs", "Unit": "Milliseconds"},
                    {"Name": "CycleDelayMs", "Unit": "Milliseconds"},
                    {"Name": "LinksDone", "Unit": "Count"},
                    {"Name": "LinksFailed", "Unit": "Count"},
                    {"Name": "EventsApplied", "Unit": "Count"},
                    {"Name": "StoreRequests", "Unit": "Count"},
                ],
            }
        ],
    }
    return json.dumps(doc, sort_keys=True)
