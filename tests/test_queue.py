"""The queue that wakes the processor: local (make run) and SQS (moto)."""

import json
import threading

import boto3
import pytest
from moto import mock_aws

from chalicelib.keys import InvalidOrg
from chalicelib.queue import (
    LocalQueue,
    SqsQueue,
    message_body,
    open_queue,
    org_of_message,
)
from clocks import FakeClock


def test_local_queue_hands_out_orgs_in_the_order_they_came_due():
    clock = FakeClock()
    queue = LocalQueue(clock=clock)
    queue.send("acme")
    clock.advance(1)
    queue.send("globex")
    assert queue.receive(timeout=0) == "acme"
    assert queue.receive(timeout=0) == "globex"
    assert queue.receive(timeout=0) is None


def test_an_org_waiting_is_queued_once():
    queue = LocalQueue()
    for _ in range(5):
        queue.send("acme")
    queue.send("globex")
    assert queue.pending() == ["acme", "globex"]
    assert [queue.receive(0), queue.receive(0), queue.receive(0)] == [
        "acme",
        "globex",
        None,
    ]


def test_an_org_sent_again_while_in_flight_is_queued_again():
    queue = LocalQueue()
    queue.send("acme")
    assert queue.receive(0) == "acme"
    queue.send("acme")
    assert queue.receive(0) == "acme"


def test_a_delayed_org_waits_until_it_is_due():
    clock = FakeClock()
    queue = LocalQueue(clock=clock)
    queue.send("acme", delay_seconds=30)
    assert queue.receive(timeout=0) is None
    clock.advance(29)
    assert queue.receive(timeout=0) is None
    clock.advance(1)
    assert queue.receive(timeout=0) == "acme"


def test_a_send_without_delay_brings_a_delayed_org_forward():
    clock = FakeClock()
    queue = LocalQueue(clock=clock)
    queue.send("acme", delay_seconds=30)
    queue.send("acme")
    assert queue.receive(timeout=0) == "acme"


def test_a_delayed_send_does_not_postpone_an_org_already_due():
    clock = FakeClock()
    queue = LocalQueue(clock=clock)
    queue.send("acme")
    queue.send("acme", delay_seconds=30)
    assert queue.receive(timeout=0) == "acme"


def test_receive_blocks_until_another_thread_sends():
    queue = LocalQueue()
    received = []
    receiver = threading.Thread(target=lambda: received.append(queue.receive(timeout=30)))
    receiver.start()
    queue.send("acme")
    receiver.join(timeout=30)
    assert received == ["acme"]


def test_many_threads_sending_the_same_orgs_leave_each_queued_once():
    queue = LocalQueue()
    orgs = [f"org-{n}" for n in range(20)]
    barrier = threading.Barrier(8)

    def send_all():
        barrier.wait()
        for org in orgs:
            queue.send(org)

    senders = [threading.Thread(target=send_all) for _ in range(8)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    received = []
    while (org := queue.receive(0)) is not None:
        received.append(org)
    assert sorted(received) == sorted(orgs)


@pytest.mark.parametrize("org", ["", "a/b", "../etc", "x" * 65, None, 42])
def test_local_queue_refuses_bad_orgs_and_queues_nothing(org):
    queue = LocalQueue()
    with pytest.raises(InvalidOrg):
        queue.send(org)
    assert queue.pending() == []


def test_local_queue_refuses_a_negative_delay():
    queue = LocalQueue()
    with pytest.raises(ValueError, match="delay_seconds"):
        queue.send("acme", delay_seconds=-1)
    assert queue.pending() == []


def test_message_body_round_trips():
    assert json.loads(message_body("acme")) == {"org": "acme"}
    assert org_of_message(message_body("acme")) == "acme"


@pytest.mark.parametrize(
    "body",
    ["not json", "[]", '"acme"', "{}", '{"org": "a/b"}', '{"org": 7}', '{"org": ""}'],
)
def test_org_of_message_refuses_bodies_naming_no_valid_org(body):
    with pytest.raises(ValueError):
        org_of_message(body)


def test_open_queue_local():
    assert isinstance(open_queue("local"), LocalQueue)


@pytest.mark.parametrize(
    "setting",
    ["", "Local", "sqs://queue", "ftp://sqs.eu-west-1.amazonaws.com/1/q",
     "https://sqs.eu-west-1.amazonaws.com/", "https://sqs.eu-west-1.amazonaws.com/1",
     "https:///1/q"],
)
def test_open_queue_refuses_bad_settings(setting):
    with pytest.raises(ValueError, match="LINKLOG_QUEUE|ACCOUNT/NAME"):
        open_queue(setting)


@pytest.fixture
def sqs(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    with mock_aws():
        client = boto3.client("sqs", region_name="eu-west-1")
        url = client.create_queue(QueueName="linklog-process")["QueueUrl"]
        yield client, url


def test_sqs_send_puts_one_org_message_on_the_queue(sqs):
    client, url = sqs
    queue = open_queue(url)
    assert isinstance(queue, SqsQueue)
    queue.send("acme")
    messages = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [json.loads(m["Body"]) for m in messages] == [{"org": "acme"}]


def test_sqs_send_passes_the_delay_capped_at_fifteen_minutes(sqs):
    client, url = sqs
    sent = []

    class Recording:
        def send_message(self, **kwargs):
            sent.append(kwargs["DelaySeconds"])
            return client.send_message(**kwargs)

    queue = SqsQueue(url, client=Recording())
    queue.send("acme", delay_seconds=12.4)
    queue.send("acme", delay_seconds=5000)
    assert sent == [12, 900]
    assert client.receive_message(QueueUrl=url).get("Messages") is None


def test_sqs_refuses_a_bad_org_and_sends_nothing(sqs):
    client, url = sqs
    with pytest.raises(InvalidOrg):
        SqsQueue(url).send("a/b")
    assert client.receive_message(QueueUrl=url).get("Messages") is None


def test_sqs_receive_returns_the_org_and_deletes_the_message(sqs):
    client, url = sqs
    queue = SqsQueue(url)
    queue.send("acme")
    assert queue.receive(timeout=0) == "acme"
    assert queue.receive(timeout=0) is None
    attributes = client.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_sqs_receive_drops_a_malformed_message(sqs):
    client, url = sqs
    client.send_message(QueueUrl=url, MessageBody='{"org": "../x"}')
    queue = SqsQueue(url)
    assert queue.receive(timeout=0) is None
    queue.send("acme")
    assert queue.receive(timeout=0) == "acme"
