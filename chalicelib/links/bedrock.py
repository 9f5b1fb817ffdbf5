"""A summarizer backed by a hosted model on Amazon Bedrock (the Converse API).

An option per org, never a dependency: on a timeout, an AWS error, an
empty or odd answer, it returns the offline extractive summary instead,
and says so (``Summary.fallback_from`` and ``fallback_reason``).
This module and the store/queue backends are the only ones that talk to AWS.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from chalicelib.links.summary import MAX_SUMMARY_CHARS, ExtractiveSummarizer, Summary

log = logging.getLogger(__name__)

# The model sees the start of the page only: enough to summarize an
# article, and it bounds the tokens (and the cost) of one call.
MAX_PROMPT_CHARS = 12_000
_INSTRUCTIONS = (
    "Summarize the web page below in at most three sentences and at most "
    f"{MAX_SUMMARY_CHARS} characters, in the page's language. "
    "Answer with the summary only."
)


class BedrockSummarizer:
    """Summaries from a Bedrock model, within ``timeout`` seconds, else extractive.

    ``client`` is a boto3 ``bedrock-runtime`` client. The timeout is
    enforced here (the call runs on a worker thread and is abandoned when
    late), whatever the client's own settings; ``make_bedrock_client``
    also sets them so an abandoned call ends soon after.
    """

    def __init__(
        self,
        client,
        model_id: str,
        timeout: float = 10.0,
        *,
        fallback: ExtractiveSummarizer | None = None,
        max_tokens: int = 200,
    ):
        self.client = client
        self.model_id = model_id
        self.timeout = timeout
        self.fallback = fallback or ExtractiveSummarizer()
        self.max_tokens = max_tokens
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="bedrock")

    @property
    def name(self) -> str:
        """The setting that chose this summarizer: ``bedrock:<model id>``."""
        return f"bedrock:{self.model_id}"

    def summarize(self, title: str | None, text: str) -> str:
        """The summary's text, the model's or the extractive one."""
        return self.summary(title, text).text

    def summary(self, title: str | None, text: str) -> Summary:
        if not text.strip():
            return Summary("", self.name)
        future = self._pool.submit(self._converse, title, text)
        try:
            answer = future.result(timeout=self.timeout)
        except FutureTimeout:
            return self._fall_back(title, text, f"no answer within {self.timeout:g} s")
        except Exception as error:  # any failure of an optional service means: fall back
            return self._fall_back(title, text, f"{type(error).__name__}: {error}")
        if not answer:
            return self._fall_back(title, text, "the model answered with no text")
        if len(answer) > MAX_SUMMARY_CHARS:
            answer = answer[: MAX_SUMMARY_CHARS - 1].rstrip() + "…"
        return Summary(answer, self.name)

    def _fall_back(self, title: str | None, text: str, reason: str) -> Summary:
        log.warning("bedrock summary with %s failed (%s); using the extractive one", self.model_id, reason)
        return Summary(
            self.fallback.summarize(title, text),
            "extractive",
            fallback_from=self.name,
            fallback_reason=" ".join(reason.split())[:500],
        )

    def _converse(self, title: str | None, text: str) -> str:
        page = f"Title: {title}\n\n{text[:MAX_PROMPT_CHARS]}" if title else text[:MAX_PROMPT_CHARS]
        response = self.client.converse(
            modelId=self.model_id,
            system=[{"text": _INSTRUCTIONS}],
            messages=[{"role": "user", "content": [{"text": page}]}],
            inferenceConfig={"maxTokens": self.max_tokens, "temperature": 0.0},
        )
        blocks = response.get("output", {}).get("message", {}).get("content", [])
        return " ".join(" ".join(b["text"].split()) for b in blocks if isinstance(b.get("text"), str)).strip()


def make_bedrock_client(timeout: float):
    """A bedrock-runtime client from the standard AWS settings, with short timeouts and no retries.

    No retries because a retried call would outlive the summarizer's
    timeout; the extractive fallback is the retry.
    """
    import boto3
    from botocore.config import Config

    from chalicelib.config import aws_region

    return boto3.client(
        "bedrock-runtime",
        region_name=aws_region(),
        config=Config(connect_timeout=timeout, read_timeout=timeout, retries={"total_max_attempts": 1, "mode": "standard"}),
    )
