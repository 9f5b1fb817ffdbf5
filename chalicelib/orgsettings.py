"""An org's settings: what its processor does for it (issue 13, item 5).

Settings live in the log like everything else: a client appends
``v1.OrgSettingsChanged`` with the choices it changes, the state keeps the
latest value of each, and the processor reads them from the state every
cycle. Choices not named in an event keep their value; an org that never
chose anything gets ``DEFAULTS``.

- ``summarizer``: ``extractive`` (offline, the default) or
  ``bedrock:<model id>`` (a hosted model on Amazon Bedrock, which falls
  back to the extractive summary on any error or timeout).
- ``summarizerTimeout``: seconds a Bedrock summary may take.
- ``tagSuggestions``: ``existing`` (only tags the org has) or
  ``existing+new`` (also new tags from the page's keyphrases).

The rules here are the one definition push validation, the materializer
and the API share.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

EXTRACTIVE = "extractive"
BEDROCK_PREFIX = "bedrock:"
# Bedrock model ids ("anthropic.claude-3-haiku-20240307-v1:0"), inference
# profile ids ("eu.anthropic…") and ARNs use these characters only.
SUMMARIZER_PATTERN = re.compile(r"^(extractive|bedrock:[A-Za-z0-9][A-Za-z0-9._:/-]{0,199})$")
TAG_SUGGESTIONS = ("existing", "existing+new")
# A Bedrock summary is a nicety: a link should not wait for one long, and
# each second it may take is a second fewer for the cycle's other links.
MIN_TIMEOUT_SECONDS = 1.0
MAX_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class OrgSettings:
    """An org's choices, each a value the rules above accept."""

    summarizer: str = EXTRACTIVE
    summarizer_timeout: float = 10.0
    tag_suggestions: str = "existing"

    @property
    def suggest_new_tags(self) -> bool:
        return self.tag_suggestions == "existing+new"

    def as_json(self) -> dict:
        """The settings as the API shows them (the event's argument names)."""
        return {
            "summarizer": self.summarizer,
            "summarizerTimeout": self.summarizer_timeout,
            "tagSuggestions": self.tag_suggestions,
        }


DEFAULTS = OrgSettings()


def summarizer_problem(value: object) -> str | None:
    """Why ``value`` is not a summarizer setting, or None when it is one."""
    if isinstance(value, str) and SUMMARIZER_PATTERN.fullmatch(value):
        return None
    return "must be 'extractive' or 'bedrock:<model id>' (letters, digits and . _ : / -, at most 200)"


def timeout_problem(value: object) -> str | None:
    """Why ``value`` is not a summarizer timeout, or None when it is one."""
    if type(value) in (int, float) and MIN_TIMEOUT_SECONDS <= value <= MAX_TIMEOUT_SECONDS:
        return None
    return f"must be a number of seconds from {MIN_TIMEOUT_SECONDS:g} to {MAX_TIMEOUT_SECONDS:g}"


def tag_suggestions_problem(value: object) -> str | None:
    """Why ``value`` is not a tag suggestions setting, or None when it is one."""
    if value in TAG_SUGGESTIONS and isinstance(value, str):
        return None
    return "must be 'existing' or 'existing+new'"
