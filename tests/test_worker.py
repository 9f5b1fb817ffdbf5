"""The local worker: queue in, cycles out, sweeps so retries come due unasked."""

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import boto3
import pytest

from chalicelib import lease, log
from chalicelib.links.outcome import LinkFailure, LinkOutcome, PageMetadata
from chalicelib.queue import LocalQueue, open_queue
from chalicelib.store import open_store
from chalicelib.triggers import cycle_runner
from chalicelib.worker import start_worker
from processing_org import save_link

TERMINAL = {"v1.LinkProcessingCompleted", "v1.LinkProcessingFailed"}


@dataclass
class Report:
    outcome: str
    next_due: datetime | None = None


def eventually(condition, timeout=20.0):
    """Poll until ``condition()`` holds; the timeout only stops a hung test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@pytest.fixture
def worker():
    """start_worker, stopped and joined when the test ends."""
    stop = threading.Event()
    threads = []

    def start(store, queue, **settings):
        settings.setdefault("poll_seconds", 0.05)
        threads.append(start_worker(store, queue, stop_event=stop, **settings))
        return threads[-1]

    yield start
    stop.set()
    for thread in threads:
        thread.join(timeout=30)


class Scripted:
    """run(org) answering from a script of outcomes, then "nothing_to_do"."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []

    def __call__(self, org):
        self.calls.append(org)
        answer = self.answers.pop(0) if self.answers else Report("nothing_to_do")
        if isinstance(answer, Exception):
            raise answer
        return answer


def terminal_events(store, org):
    return [
        (event["name"], event["args"]["linkId"])
        for commit in log.read_commits(store, org, 0)
        for event in commit["events"]
        if event["name"] in TERMINAL
    ]


def titled(job):
    return LinkOutcome(link_id=job.link_id, metadata=PageMetadata(title=f"page {job.url}"))


def test_an_org_sent_gets_a_cycle(local_store, worker):
    run = Scripted(Report("done"))
    queue = LocalQueue()
    worker(local_store, queue, process=titled, run=run)
    queue.send("acme")
    assert eventually(lambda: run.calls == ["acme"])


@pytest.mark.parametrize("outcome", ["lease_held", "stopped"])
def test_an_org_that_must_wait_is_tried_again(local_store, worker, outcome):
    run = Scripted(Report(outcome), Report("done"))
    queue = LocalQueue()
    worker(local_store, queue, process=titled, run=run,
                 retry_delay=0)
    queue.send("acme")
    assert eventually(lambda: run.calls == ["acme", "acme"])


def test_a_cycle_that_raises_is_tried_again_and_the_worker_lives_on(local_store, worker):
    run = Scripted(RuntimeError("boom"), Report("done"))
    queue = LocalQueue()
    thread = worker(local_store, queue, process=titled, run=run,
                          retry_delay=0)
    queue.send("acme")
    assert eventually(lambda: run.calls == ["acme", "acme"])
    assert thread.is_alive()


def test_work_left_is_taken_up_again_at_once(local_store, worker):
    run = Scripted(Report("work_left"), Report("work_left"), Report("done"))
    queue = LocalQueue()
    worker(local_store, queue, process=titled, run=run,
                 retry_delay=3600)
    queue.send("acme")
    assert eventually(lambda: run.calls == ["acme"] * 3)


def test_a_retry_due_is_queued_for_its_time(local_store, worker):
    now = datetime(2026, 11, 23, 20, 0, tzinfo=timezone.utc)
    run = Scripted(Report("done", next_due=now + timedelta(hours=1)))
    queue = LocalQueue()
    worker(local_store, queue, process=titled, run=run,
                 now=lambda: now, retry_delay=0)
    queue.send("acme")
    assert eventually(lambda: run.calls == ["acme"] and queue.pending() == ["acme"])
    assert queue.receive(timeout=0) is None


def test_a_queue_that_fails_to_answer_does_not_end_the_worker(local_store, worker):
    class Unreachable(LocalQueue):
        failures = 2

        def receive(self, timeout):
            if self.failures:
                self.failures -= 1
                raise ConnectionError("queue endpoint unreachable")
            return super().receive(timeout)

    run = Scripted(Report("done"))
    queue = Unreachable()
    thread = worker(local_store, queue, process=titled, run=run, retry_delay=0)
    queue.send("acme")
    assert eventually(lambda: run.calls == ["acme"])
    assert queue.failures == 0 and thread.is_alive()


def test_setting_the_stop_event_ends_the_worker(local_store):
    stop = threading.Event()
    thread = start_worker(local_store, LocalQueue(), process=titled, stop_event=stop,
                          poll_seconds=0.05,
                          run=Scripted())
    stop.set()
    thread.join(timeout=20)
    assert not thread.is_alive()


@pytest.mark.parametrize("settings", [{"sweep_every": 0}, {"retry_delay": -1},
                                      {"poll_seconds": 0}])
def test_bad_settings_are_refused(local_store, settings):
    with pytest.raises(ValueError):
        start_worker(local_store, LocalQueue(), process=titled, **settings)


def test_a_saved_link_is_processed_to_a_terminal_status(local_store, worker):
    queue = LocalQueue()
    worker(local_store, queue, process=titled)
    save_link(local_store, "acme", "l1")
    queue.send("acme")
    assert eventually(lambda: terminal_events(local_store, "acme")
                      == [("v1.LinkProcessingCompleted", "l1")])


def test_commits_nobody_announced_are_found_by_the_first_sweep(local_store, worker):
    save_link(local_store, "acme", "l1")
    save_link(local_store, "globex", "l2")
    worker(local_store, LocalQueue(), process=titled)
    assert eventually(lambda: terminal_events(local_store, "acme")
                      == [("v1.LinkProcessingCompleted", "l1")]
                      and terminal_events(local_store, "globex")
                      == [("v1.LinkProcessingCompleted", "l2")])


def test_an_org_whose_lease_is_held_is_processed_once_it_is_released(local_store, worker):
    save_link(local_store, "acme", "l1")
    held = lease.acquire(local_store, "acme", "someone-else", duration=3600,
                         clock=time.monotonic)
    cycle = cycle_runner(local_store, process=titled, enqueue=None)
    outcomes = []

    def run(org):
        report = cycle(org)
        outcomes.append(report.outcome)
        return report

    queue = LocalQueue()
    worker(local_store, queue, process=titled, retry_delay=0.01,
                 sweep_every=3600, run=run)
    queue.send("acme")
    assert eventually(lambda: outcomes[:2] == ["lease_held", "lease_held"])
    assert terminal_events(local_store, "acme") == []
    lease.release(local_store, held)
    assert eventually(lambda: terminal_events(local_store, "acme")
                      == [("v1.LinkProcessingCompleted", "l1")])


def test_a_retryable_failure_is_retried_when_due_without_a_push(local_store, worker):
    now = [datetime(2026, 11, 23, 20, 0, tzinfo=timezone.utc)]
    attempts = []

    def flaky(job):
        attempts.append(job.link_id)
        if len(attempts) == 1:
            return LinkOutcome(link_id=job.link_id, failure=LinkFailure(
                code="http_503", message="try later", retryable=True, retry_after=60))
        return titled(job)

    queue = LocalQueue()
    worker(local_store, queue, process=flaky, sweep_every=0.02,
                 now=lambda: now[0])
    save_link(local_store, "acme", "l1")
    queue.send("acme")
    assert eventually(lambda: terminal_events(local_store, "acme")
                      == [("v1.LinkProcessingFailed", "l1")])
    now[0] += timedelta(days=1)
    assert eventually(lambda: terminal_events(local_store, "acme")
                      == [("v1.LinkProcessingFailed", "l1"),
                          ("v1.LinkProcessingCompleted", "l1")])
    assert attempts == ["l1", "l1"]


def test_the_worker_consumes_an_sqs_queue_over_moto_server(s3_env, worker):
    # make run pointed at moto's server: s3:// store and an SQS queue URL,
    # reached through the standard AWS settings only.
    store = open_store(f"s3://{s3_env}")
    url = boto3.client("sqs").create_queue(QueueName=f"q-{s3_env}")["QueueUrl"]
    queue = open_queue(url)
    worker(store, queue, process=titled, sweep_every=3600)
    save_link(store, "acme", "l1")
    queue.send("acme")
    assert eventually(lambda: terminal_events(store, "acme")
                      == [("v1.LinkProcessingCompleted", "l1")])
