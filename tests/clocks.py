"""Clocks a test moves by hand, for the code that takes ``clock`` or ``now``."""

from __future__ import annotations

from datetime import datetime, timezone

T0 = datetime(2026, 11, 23, 20, 0, tzinfo=timezone.utc)


class FakeClock:
    """Monotonic seconds (as ``time.monotonic``) that move only when told."""

    def __init__(self, start: float = 1000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class WallClock:
    """An aware UTC time (as ``cycle.utc_now``) that moves only when ``at`` is set."""

    def __init__(self, start: datetime = T0):
        self.at = start

    def __call__(self) -> datetime:
        return self.at
