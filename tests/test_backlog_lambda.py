"""On the Lambda path a backlog drains too (issue 8): 300 links, the SQS
handler and the scheduled sweep, over moto's server with S3 and SQS.

The test plays AWS's part: it delivers queue messages to
``app.process_org_messages`` in batches of up to ten, as the event source
mapping does, deletes what the handler did not report as failed, and lets
failed messages come back after their visibility timeout. Pushes go through
the API over HTTP and wake the processor through the real SQS queue.
"""

import time
import uuid
from datetime import datetime, timezone

import boto3
import pytest

import app as api
from api_server import serving
from backlog import allow_list, check_each_link_ended_once, push_bodies, sites, wait_until
from chalicelib import orgstate
from chalicelib.queue import SqsQueue
from chalicelib.store import open_store
from chalicelib.store.motoserver import FAKE_AWS
from statelog import all_commits

LINKS = 300
ORIGINS = 4
VISIBILITY_SECONDS = 2
SCHEDULED = {"version": "0", "account": "123456789012", "region": "us-east-1",
             "detail": {}, "detail-type": "Scheduled Event", "source": "aws.events",
             "time": "2026-11-23T20:05:00Z", "id": "sweep-tick",
             "resources": ["arn:aws:events:us-east-1:123456789012:rule/sweep"]}


@pytest.fixture
def aws(s3_env, moto_server, monkeypatch):
    """The store (a fresh bucket) and an SQS queue on moto's server; the
    app's link processor is rebuilt for this test's allow list."""
    sqs = boto3.client("sqs", endpoint_url=moto_server, **FAKE_AWS)
    queue_url = sqs.create_queue(
        QueueName=f"linklog-{uuid.uuid4().hex[:12]}",
        Attributes={"VisibilityTimeout": str(VISIBILITY_SECONDS)},
    )["QueueUrl"]
    store = open_store(f"s3://{s3_env}/linklog")
    with sites(LINKS, ORIGINS) as urls:
        monkeypatch.setenv("LINKLOG_ALLOW_HOSTS", allow_list(urls))
        api._process_link.cache_clear()
        try:
            yield store, sqs, queue_url, urls
        finally:
            api._process_link.cache_clear()


def deliver_one_batch(sqs, queue_url) -> int:
    """Hand up to ten messages to the SQS handler as Lambda would; delete
    those it did not report as failed. Returns how many were delivered."""
    answer = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    messages = answer.get("Messages", [])
    if not messages:
        return 0
    records = [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"], "attributes": {}, "messageAttributes": {},
                "eventSource": "aws:sqs", "awsRegion": "us-east-1",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:linklog-process"}
               for m in messages]
    result = api.process_org_messages({"Records": records}, None)
    failed = {failure["itemIdentifier"] for failure in result["batchItemFailures"]}
    for message in messages:
        if message["MessageId"] not in failed:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return len(messages)


def lose_every_message(sqs, queue_url) -> None:
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                          WaitTimeSeconds=0).get("Messages", []):
        for message in messages:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def ended(store) -> int:
    db = orgstate.load(store, "acme")
    return db.execute("SELECT count(*) FROM link_status "
                      "WHERE status IN ('completed', 'failed', 'cancelled')").get


def test_the_sqs_handler_alone_drains_300_links(aws):
    store, sqs, queue_url, urls = aws
    with serving(store, SqsQueue(queue_url)) as running:
        for body in push_bodies(urls, per_push=150):
            assert running.push(body).status_code == 200

        def delivered_until_all_ended():
            deliver_one_batch(sqs, queue_url)
            return ended(store) == LINKS

        wait_until(delivered_until_all_ended, 300, "every link ended through SQS alone")
    check_each_link_ended_once(all_commits(store, "acme"), {f"backlog-{n}" for n in range(LINKS)})


def test_the_sweep_alone_drains_300_links_whose_wake_ups_are_lost(aws):
    store, sqs, queue_url, urls = aws
    with serving(store, SqsQueue(queue_url)) as running:
        for body in push_bodies(urls, per_push=150):
            assert running.push(body).status_code == 200
    lose_every_message(sqs, queue_url)
    ticks = 0

    def swept_until_all_ended():
        nonlocal ticks
        ticks += 1
        api.sweep_orgs(SCHEDULED, None)
        deliver_one_batch(sqs, queue_url)
        # The cycle's own wake-up (work left) is lost too: only the next
        # sweep may find the rest.
        lose_every_message(sqs, queue_url)
        return ended(store) == LINKS

    with serving(store, SqsQueue(queue_url)):
        wait_until(swept_until_all_ended, 300, "every link ended through sweeps alone")
    assert ticks > 1, "one cycle took every link: the backlog was no backlog"
    check_each_link_ended_once(all_commits(store, "acme"), {f"backlog-{n}" for n in range(LINKS)})
