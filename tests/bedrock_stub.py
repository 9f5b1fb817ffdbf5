"""A bedrock-runtime client under botocore's Stubber, and the answers it gives,
for the summary and settings tests. The client has fake credentials and a
region of its own, so no test depends on AWS settings in the environment.

For a server process (which makes its own client), ``unreachable_bedrock``
gives the environment of a Bedrock that refuses every connection."""

from __future__ import annotations

import socket
from contextlib import contextmanager

import boto3
from botocore.stub import Stubber


@contextmanager
def stubbed_bedrock():
    """Yield ``(client, stubber)``; the stubber is active until the block ends."""
    client = boto3.client(
        "bedrock-runtime", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with Stubber(client) as stubber:
        yield client, stubber


def converse_answer(text: str) -> dict:
    """A Converse response whose message is ``text``."""
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 100, "outputTokens": 20, "totalTokens": 120},
        "metrics": {"latencyMs": 300},
    }


@contextmanager
def unreachable_bedrock():
    """Yield environment variables under which a server's Bedrock calls are refused at once.

    The bedrock-runtime endpoint is a port on 127.0.0.1 that this block
    keeps bound but never listens on, so no other process can take it and
    a call never leaves the machine; the region and credentials are fake.
    """
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield {
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": f"http://127.0.0.1:{held.getsockname()[1]}",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }
