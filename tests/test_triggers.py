"""Triggers: SQS batches, S3 notifications and the sweep, turned into cycles."""

import json
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from moto import mock_aws

from chalicelib import config, lease, log
from chalicelib.cycle import run_cycle
from chalicelib.keys import log_key
from chalicelib.links.outcome import LinkFailure, LinkOutcome, PageMetadata
from chalicelib.queue import LocalQueue
from chalicelib.store.base import CountingStore, Transient
from chalicelib.triggers import (
    cycle_runner,
    handle_sqs_records,
    list_orgs,
    orgs_from_s3_event,
    sweep,
)
from processing_org import CLIENT, save_link

LOG_KEY = "orgs/acme/log/00000000000000000001.json"


@dataclass
class Report:
    outcome: str


class Cycles:
    """A stand-in for run(org) that records calls and answers per org."""

    def __init__(self, outcomes=None):
        self.outcomes = outcomes or {}
        self.calls = []
        self._lock = threading.Lock()

    def __call__(self, org):
        with self._lock:
            self.calls.append(org)
        outcome = self.outcomes.get(org, "done")
        if isinstance(outcome, Exception):
            raise outcome
        return Report(outcome)


def sqs_record(message_id, body):
    return {
        "messageId": message_id,
        "receiptHandle": f"handle-{message_id}",
        "body": body if isinstance(body, str) or body is None else json.dumps(body),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:linklog-process",
        "awsRegion": "eu-west-1",
    }


def s3_notification(*keys, name="ObjectCreated:Put"):
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventName": name,
                "s3": {"bucket": {"name": "linklog"}, "object": {"key": key, "size": 10}},
            }
            for key in keys
        ]
    }


def test_records_of_one_org_share_one_cycle():
    cycles = Cycles()
    records = [
        sqs_record("m1", {"org": "acme"}),
        sqs_record("m2", {"org": "globex"}),
        sqs_record("m3", {"org": "acme"}),
        sqs_record("m4", {"org": "acme"}),
    ]
    assert handle_sqs_records(records, run=cycles) == {"batchItemFailures": []}
    assert sorted(cycles.calls) == ["acme", "globex"]


@pytest.mark.parametrize("outcome", ["lease_held", "stopped"])
def test_every_record_of_an_org_that_must_wait_is_reported_failed(outcome):
    cycles = Cycles({"acme": outcome})
    records = [
        sqs_record("m1", {"org": "acme"}),
        sqs_record("m2", {"org": "globex"}),
        sqs_record("m3", {"org": "acme"}),
    ]
    assert handle_sqs_records(records, run=cycles) == {
        "batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m3"}]
    }


@pytest.mark.parametrize("outcome", ["done", "work_left", "nothing_to_do"])
def test_an_org_whose_cycle_ran_is_done_with(outcome):
    cycles = Cycles({"acme": outcome})
    records = [sqs_record("m1", {"org": "acme"})]
    assert handle_sqs_records(records, run=cycles) == {"batchItemFailures": []}


def test_a_cycle_that_raises_fails_only_its_own_orgs_records():
    cycles = Cycles({"globex": RuntimeError("store down")})
    records = [
        sqs_record("m1", {"org": "acme"}),
        sqs_record("m2", {"org": "globex"}),
        sqs_record("m3", {"org": "initech"}),
    ]
    assert handle_sqs_records(records, run=cycles) == {
        "batchItemFailures": [{"itemIdentifier": "m2"}]
    }
    assert sorted(cycles.calls) == ["acme", "globex", "initech"]


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        None,
        "[1, 2]",
        '"acme"',
        "{}",
        '{"org": null}',
        '{"org": "../etc"}',
        '{"org": "a b"}',
        '{"org": ""}',
        json.dumps({"org": "x" * 65}),
        '{"Records": "nope"}',
    ],
)
def test_a_record_naming_no_valid_org_is_dropped_not_redelivered(body):
    cycles = Cycles()
    records = [sqs_record("bad", body), sqs_record("good", {"org": "acme"})]
    assert handle_sqs_records(records, run=cycles) == {"batchItemFailures": []}
    assert cycles.calls == ["acme"]


def test_records_without_a_message_id_are_dropped():
    cycles = Cycles()
    records = ["junk", {"body": '{"org": "globex"}'}, sqs_record("m1", {"org": "acme"})]
    assert handle_sqs_records(records, run=cycles) == {"batchItemFailures": []}
    assert cycles.calls == ["acme"]


def test_an_s3_notification_record_runs_the_orgs_of_its_log_keys():
    cycles = Cycles({"globex": "lease_held"})
    records = [
        sqs_record("n1", s3_notification(LOG_KEY, "orgs/acme/lease.json")),
        sqs_record("n2", s3_notification("orgs/globex/log/00000000000000000007.json",
                                         "orgs/initech/log/00000000000000000002.json")),
        sqs_record("n3", s3_notification("orgs/initech/lease.json")),
    ]
    assert handle_sqs_records(records, run=cycles) == {
        "batchItemFailures": [{"itemIdentifier": "n2"}]
    }
    assert sorted(cycles.calls) == ["acme", "globex", "initech"]


def test_orgs_of_one_batch_run_at_the_same_time():
    # Each cycle waits for the other two: run one after another, they would
    # break the barrier and fail.
    barrier = threading.Barrier(3, timeout=10)

    def run(org):
        barrier.wait()
        return Report("done")

    records = [sqs_record(f"m{n}", {"org": org}) for n, org in enumerate(["a", "b", "c"])]
    assert handle_sqs_records(records, run=run) == {"batchItemFailures": []}


def test_an_empty_batch_runs_nothing():
    cycles = Cycles()
    assert handle_sqs_records([], run=cycles) == {"batchItemFailures": []}
    assert cycles.calls == []


def test_orgs_from_an_s3_object_created_event():
    event = s3_notification(
        LOG_KEY,
        "orgs/acme/log/00000000000000000002.json",
        "orgs/globex/log/00000000000000000001.json",
    )
    assert orgs_from_s3_event(event) == {"acme", "globex"}


@pytest.mark.parametrize(
    "key",
    [
        "orgs/acme/lease.json",
        "orgs/acme/snapshots/abc/00000000000000000001.sqlite",
        "orgs/acme/log/1.json",
        "orgs/acme/log/00000000000000000001.json.tmp",
        "orgs/acme/log/nested/00000000000000000001.json",
        "orgs/a%20b/log/00000000000000000001.json",
        "orgs/../log/00000000000000000001.json",
        "other/acme/log/00000000000000000001.json",
        "orgs/acme",
    ],
)
def test_keys_that_are_not_log_commits_name_no_org(key):
    assert orgs_from_s3_event(s3_notification(key)) == set()


def test_keys_arrive_url_encoded_and_are_decoded():
    event = s3_notification("orgs%2Facme%2Flog%2F00000000000000000003.json")
    assert orgs_from_s3_event(event) == {"acme"}


def test_only_object_created_events_count():
    event = s3_notification(LOG_KEY, name="ObjectRemoved:Delete")
    assert orgs_from_s3_event(event) == set()


@pytest.mark.parametrize(
    "event",
    [
        None,
        [],
        "Records",
        {},
        {"Records": None},
        {"Records": ["junk", 7, None]},
        {"Records": [{"eventName": "ObjectCreated:Put"}]},
        {"Records": [{"eventName": "ObjectCreated:Put", "s3": {"object": {}}}]},
        {"Records": [{"eventName": 5, "s3": {"object": {"key": LOG_KEY}}}]},
        {"Records": [{"eventSource": "aws:sqs", "body": "not json"}]},
        {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "linklog"},
    ],
)
def test_junk_events_name_no_org(event):
    assert orgs_from_s3_event(event) == set()


def test_junk_records_do_not_hide_good_ones():
    event = s3_notification(LOG_KEY)
    event["Records"].insert(0, {"eventName": "ObjectCreated:Put"})
    event["Records"].append("junk")
    assert orgs_from_s3_event(event) == {"acme"}


def test_an_sqs_event_carrying_s3_notifications():
    event = {"Records": [sqs_record("m1", s3_notification(LOG_KEY)),
                         sqs_record("m2", {"Event": "s3:TestEvent"})]}
    assert orgs_from_s3_event(event) == {"acme"}


def test_notifications_a_bucket_really_sends_to_its_queue(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1")
        sqs = boto3.client("sqs", region_name="eu-west-1")
        url = sqs.create_queue(QueueName="linklog-process")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        s3.create_bucket(Bucket="linklog",
                         CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        s3.put_bucket_notification_configuration(
            Bucket="linklog",
            NotificationConfiguration={"QueueConfigurations": [{
                "QueueArn": arn,
                "Events": ["s3:ObjectCreated:*"],
                "Filter": {"Key": {"FilterRules": [
                    {"Name": "prefix", "Value": "orgs/"},
                    {"Name": "suffix", "Value": ".json"},
                ]}},
            }]},
        )
        for key in (LOG_KEY, "orgs/acme/lease.json",
                    "orgs/globex/log/00000000000000000001.json"):
            s3.put_object(Bucket="linklog", Key=key, Body=b"{}")
        messages = []
        while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get(
                "Messages"):
            messages.extend(batch)
    records = [sqs_record(m["MessageId"], m["Body"]) for m in messages]
    cycles = Cycles()
    assert handle_sqs_records(records, run=cycles) == {"batchItemFailures": []}
    assert sorted(cycles.calls) == ["acme", "globex"]


def test_keys_under_a_store_prefix_name_their_org():
    event = s3_notification("linklog/orgs/acme/log/00000000000000000001.json",
                            "a/orgs/b/orgs/globex/log/00000000000000000001.json",
                            "linklog/orgs/initech/lease.json")
    assert orgs_from_s3_event(event) == {"acme", "globex"}


# The sweep, against real stores, real cycles and real state.

NOW = datetime(2026, 11, 23, 20, 0, tzinfo=timezone.utc)


def processed(job):
    return LinkOutcome(link_id=job.link_id, metadata=PageMetadata(title="a page"))


def unavailable(job):
    return LinkOutcome(link_id=job.link_id, failure=LinkFailure(
        code="http_503", message="try later", retryable=True))


def cycle(store, org, process):
    report = run_cycle(store, org, process=process, holder="test", now=lambda: NOW,
                       emit=lambda line: None)
    assert report.outcome == "done"


@pytest.fixture
def orgs(local_store):
    """acme: saved, never processed. globex: processed. initech: processed,
    then saved again. hooli: failed retryably, retry not yet due."""
    save_link(local_store, "acme", "a1")
    save_link(local_store, "globex", "g1")
    cycle(local_store, "globex", processed)
    save_link(local_store, "initech", "i1")
    cycle(local_store, "initech", processed)
    save_link(local_store, "initech", "i2")
    save_link(local_store, "hooli", "h1")
    cycle(local_store, "hooli", unavailable)
    return local_store


def test_sweep_enqueues_orgs_whose_log_is_ahead_of_their_snapshot(orgs):
    enqueued = []
    assert sweep(orgs, now=NOW, enqueue=enqueued.append) == ["acme", "initech"]
    assert enqueued == ["acme", "initech"]


def test_sweep_enqueues_orgs_with_a_retry_due(orgs):
    enqueued = []
    later = NOW + timedelta(days=1)
    assert sweep(orgs, now=later, enqueue=enqueued.append) == ["acme", "hooli", "initech"]


def test_what_a_sweep_costs(orgs):
    """The orgs predate the due index: the first sweep walks them (once),
    the next reads only the index and checks the orgs it names."""
    counted = CountingStore(orgs)
    sweep(counted, now=NOW, enqueue=lambda org: None)
    # The walk: its progress (a get), finding 4 orgs (5 lists), each org's
    # snapshots and log after them (2 lists), the released lease of the two
    # not ahead (a small get each), an entry for each org that will need a
    # cycle (acme, initech now; hooli at its retry) and its progress (puts).
    # Then the index (a list) and the two orgs due now (2 lists each).
    assert counted.counts() == {"get": 1 + 2, "head": 0, "put": 3 + 1, "delete": 0,
                                "list": 5 + 4 * 2 + 1 + 2 * 2}
    counted = CountingStore(orgs)
    assert sweep(counted, now=NOW, enqueue=lambda org: None) == ["acme", "initech"]
    assert counted.counts() == {"get": 1, "head": 0, "put": 0, "delete": 0,
                                "list": 1 + 2 * 2}


def test_without_a_released_lease_the_sweep_leaves_the_decision_to_the_cycle(orgs):
    # A cycle that died leaves its lease held: no hint, so the cycle decides.
    orgs.put("orgs/hooli/lease.json", b'{"holder": "gone", "epoch": 9, "released": false}')
    orgs.delete("orgs/globex/lease.json")
    counted = CountingStore(orgs)

    assert sweep(counted, now=NOW, enqueue=lambda org: None) == [
        "acme", "globex", "hooli", "initech"]
    # No snapshot is read: the walk's progress, and globex's and hooli's
    # lease, once by the walk and once by the check of the orgs due.
    assert counted.counts()["get"] == 1 + 2 * 2


def test_an_org_the_sweep_cannot_check_is_enqueued_anyway(orgs):
    class SnapshotsDown:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def list(self, prefix, **kwargs):
            if "/snapshots/" in prefix and prefix.startswith("orgs/globex/"):
                raise Transient(prefix, "503 Slow Down")
            return self.inner.list(prefix, **kwargs)

    enqueued = []
    assert sweep(SnapshotsDown(orgs), now=NOW, enqueue=enqueued.append) == [
        "acme", "globex", "initech"]


def test_an_empty_store_needs_no_cycle(local_store):
    assert sweep(local_store, now=NOW, enqueue=pytest.fail) == []
    # The walk finds no org; the index is empty.
    assert local_store.counts()["list"] == 2
    assert sweep(local_store, now=NOW, enqueue=pytest.fail) == []
    assert local_store.counts()["list"] == 3


def test_list_orgs_costs_one_request_per_org_whatever_its_size(any_store):
    for org in ["aa", "a_b", "a", "a-b", "A"]:
        any_store.put(f"orgs/{org}/lease.json", b"{}")
    for version in range(1, 6):
        any_store.put(log_key("a", version), b"{}")
    any_store.put("orgs/not an org/x.json", b"{}")
    any_store.put("orgs/stray.json", b"{}")
    before = any_store.counts()["list"]
    assert list(list_orgs(any_store)) == ["A", "a-b", "a", "a_b", "aa"]
    assert any_store.counts()["list"] - before == 8


# The Chalice handlers in app.py, invoked as Lambda invokes them.

@pytest.fixture
def app_services(local_store):
    import app

    queue = LocalQueue()
    settings = config.Settings(jwt_secret="test-secret")
    app.use_services(app.build_services(settings, store=local_store, queue=queue))
    yield app, local_store, queue
    app.use_services(None)


def test_the_sqs_handler_runs_the_cycle_and_answers_batch_item_failures(app_services):
    app, store, _ = app_services
    # A loopback page is refused by the fetcher: a terminal failure, no network.
    event = {"id": "created-l1", "name": "v1.LinkCreated", "at": "2026-11-23T19:00:00Z",
             "args": {"id": "l1", "url": "http://127.0.0.1:9/",
                      "createdAt": "2026-11-23T19:00:00Z"}}
    log.append(store, "acme", [event], batch_id="b1", author=CLIENT)
    save_link(store, "globex", "g1")
    held = lease.acquire(store, "globex", "someone-else", duration=3600, clock=time.monotonic)
    assert held is not None

    answer = app.process_org_messages(
        {"Records": [sqs_record("m1", {"org": "acme"}), sqs_record("m2", {"org": "globex"}),
                     sqs_record("m3", "junk")]},
        None,
    )
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m2"}]}
    failed = [e["args"] for c in log.read_commits(store, "acme", 0) for e in c["events"]
              if e["name"] == "v1.LinkProcessingFailed"]
    assert [(f["linkId"], f["retryable"]) for f in failed] == [("l1", False)]


def test_the_scheduled_sweep_enqueues_orgs_with_work(app_services):
    app, store, queue = app_services
    save_link(store, "acme", "a1")
    scheduled = {"version": "0", "account": "123456789012", "region": "eu-west-1",
                 "detail": {}, "detail-type": "Scheduled Event", "source": "aws.events",
                 "time": "2026-11-23T20:05:00Z", "id": "e-1",
                 "resources": ["arn:aws:events:eu-west-1:123456789012:rule/sweep"]}
    app.sweep_orgs(scheduled, None)
    assert queue.pending() == ["acme"]


def test_a_wake_up_for_an_idle_org_costs_two_lists_and_a_small_get(orgs):
    # globex was processed and its log is not ahead: its released lease says
    # nothing is waiting, so no lease is taken and no snapshot is read.
    counted = CountingStore(orgs)
    run = cycle_runner(counted, process=pytest.fail, enqueue=None, now=lambda: NOW)

    report = run("globex")

    assert report.outcome == "nothing_to_do"
    assert counted.counts() == {"get": 1, "head": 0, "put": 0, "delete": 0, "list": 2}


def test_a_wake_up_with_a_retry_due_or_new_commits_runs_the_cycle(orgs):
    later = NOW + timedelta(days=1)
    outcomes = []
    for org, at in [("hooli", later), ("initech", NOW)]:
        run = cycle_runner(orgs, process=processed, enqueue=None, now=lambda at=at: at)
        outcomes.append(run(org).outcome)

    assert outcomes == ["done", "done"]


def test_a_wake_up_without_a_hint_leaves_the_decision_to_the_cycle(orgs):
    orgs.delete("orgs/globex/lease.json")
    run = cycle_runner(orgs, process=pytest.fail, enqueue=None, now=lambda: NOW)

    assert run("globex").outcome == "nothing_to_do"
    assert lease.released(orgs, "globex") is not None  # a real cycle ran and released


# A backlog larger than one cycle, driven only by what the triggers do.

def saved_backlog(store, org, count):
    events = [{"id": f"created-{org}-{n}", "name": "v1.LinkCreated", "at": "2026-11-23T19:00:00Z",
               "args": {"id": f"{org}-{n}", "url": f"http://pages.test/{n}",
                        "createdAt": "2026-11-23T19:00:00Z"}}
              for n in range(count)]
    log.append(store, org, events, batch_id=f"backlog-{org}", author=CLIENT)


def statuses(store, org):
    from chalicelib import orgstate

    db = orgstate.load(store, org)
    return dict(db.execute("SELECT status, count(*) FROM link_status GROUP BY status"))


def test_a_backlog_of_150_links_drains_through_its_own_wake_ups(local_store):
    """The cycle ends work_left and enqueues the org; that wake-up, read by
    the idle check before any lease, must run the next cycle, not skip it."""
    saved_backlog(local_store, "acme", 150)
    queue = []
    run = cycle_runner(local_store, process=processed, enqueue=queue.append, now=lambda: NOW)
    outcomes = [run("acme").outcome]
    while queue:
        outcomes.append(run(queue.pop()).outcome)
    assert statuses(local_store, "acme") == {"completed": 150}
    assert outcomes == ["work_left"] * 6 + ["done"]  # 24 a cycle: one origin


def test_the_sweep_finds_a_backlog_whose_wake_up_was_lost(local_store):
    saved_backlog(local_store, "acme", 30)
    run = cycle_runner(local_store, process=processed, enqueue=None, now=lambda: NOW)
    assert run("acme").outcome == "work_left"  # its own wake-up is lost
    enqueued = []
    assert sweep(local_store, now=NOW, enqueue=enqueued.append) == ["acme"]
    assert run("acme").outcome == "done"
    assert sweep(local_store, now=NOW, enqueue=enqueued.append) == []
    assert statuses(local_store, "acme") == {"completed": 30}


def test_a_cycle_whose_restore_failed_leaves_no_idle_hint(local_store):
    """A cycle that never read its state must not release the lease saying
    "nothing is waiting": its wake-up would then be skipped for good."""
    saved_backlog(local_store, "acme", 30)
    run = cycle_runner(local_store, process=processed, enqueue=None, now=lambda: NOW)
    assert run("acme").outcome == "work_left"

    class LogListFails:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def list(self, prefix, **kwargs):
            if "/log/" in prefix:
                raise Transient(prefix, "503 Slow Down")
            return self.inner.list(prefix, **kwargs)

    broken = cycle_runner(LogListFails(local_store), process=processed, enqueue=None,
                          now=lambda: NOW)
    assert broken("acme").outcome == "stopped"
    assert run("acme").outcome == "done"
    assert statuses(local_store, "acme") == {"completed": 30}
