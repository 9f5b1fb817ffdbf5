"""The cycle's one JSON log line: figures, slow-cycle judgement, EMF metrics."""

import json
from datetime import datetime, timezone

import pytest

from chalicelib.cyclelog import (
    CycleRecord,
    MeteredStore,
    RecentCycles,
    SlowCycleWatch,
    classify,
    log_line,
)
from chalicelib.store.base import NotFound


@pytest.mark.parametrize(
    "delay_ms, level",
    [
        (0, "optimal"),
        (99.9, "optimal"),
        (100, "acceptable"),
        (299.9, "acceptable"),
        (300, "slow"),
        (499.9, "slow"),
        (500, "warning"),
        (1000, "warning"),
        (1000.1, "critical"),
    ],
)
def test_cycles_are_judged_by_delay(delay_ms, level):
    assert classify(delay_ms) == level


def test_three_slow_cycles_among_the_last_ten_raise_a_warning():
    watch = SlowCycleWatch()
    assert [watch.observe(ms) for ms in (400, 50, 350)] == [False, False, False]
    assert watch.observe(1200) is True
    for _ in range(7):
        watch.observe(20)
    assert watch.observe(20) is False, "the first slow ones have left the window"


def test_the_delay_leaves_out_link_processing():
    record = CycleRecord(org="acme", holder="p")
    record.add_time("total", 2.5)
    record.add_time("process", 2.4)
    assert record.delay_ms() == pytest.approx(100.0)


def test_the_line_is_one_json_object_in_embedded_metric_format():
    record = CycleRecord(org="acme", holder="proc-a", outcome="done", links_done=3,
                         links_failed=1, events_applied=40,
                         requests={"get": 3, "head": 0, "put": 5, "delete": 1, "list": 4})
    record.add_time("total", 0.35)
    line = log_line(record, watch=SlowCycleWatch(),
                    wall_now=lambda: datetime(2026, 11, 23, 20, 0, tzinfo=timezone.utc))
    assert "\n" not in line
    doc = json.loads(line)
    assert doc["org"] == "acme"
    assert doc["level"] == "slow"
    assert doc["slow_streak"] is False
    assert doc["timings_ms"]["total"] == 350.0
    assert set(doc["timings_ms"]) == {
        "lease", "snapshot_get", "deserialize", "apply", "process", "commit",
        "serialize", "snapshot_put", "pack", "total",
    }
    assert (doc["CycleMs"], doc["LinksDone"], doc["LinksFailed"], doc["StoreRequests"]) == (
        350.0, 3, 1, 13)
    assert doc["_aws"]["Timestamp"] == 1795464000000
    (directive,) = doc["_aws"]["CloudWatchMetrics"]
    assert directive["Dimensions"] == [["outcome"]]
    assert doc["outcome"] == "done"
    for metric in directive["Metrics"]:
        assert isinstance(doc[metric["Name"]], (int, float))


def test_the_metered_store_counts_times_and_weighs_requests(local_store):
    ticks = iter(range(100))
    metered = MeteredStore(local_store, clock=lambda: next(ticks))
    metered.put("a", b"12345", if_absent=True)
    metered.get("a")
    metered.list("")
    with pytest.raises(NotFound):
        metered.get("missing")
    assert metered.counts() == {"get": 2, "head": 0, "put": 1, "delete": 0, "list": 1}
    assert (metered.bytes_written, metered.bytes_read) == (5, 5)
    assert (metered.seconds("put"), metered.seconds("get"), metered.seconds("list")) == (
        1, 2, 1)
    assert local_store.counts()["get"] == 2, "the outer counter sees the same requests"


def test_recent_cycles_keep_the_last_record_of_each_org():
    recent = RecentCycles(max_orgs=2)
    for org, links_done in [("a", 1), ("b", 2), ("a", 3), ("c", 4)]:
        recent.remember(CycleRecord(org=org, holder="h", links_done=links_done))

    assert recent.last("a")["links_done"] == 3
    assert recent.last("b") is None  # the least recently run org was let go
    assert recent.last("c")["links_done"] == 4
