"""A bedrock-runtime client under botocore's Stubber, and the answers it gives,
for the summary and settings tests. The client has fake credentials and a
region of its own, so no test depends on AWS settings in the environment."""

from __future__ import annotations

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
