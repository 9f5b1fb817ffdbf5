"""A realistic org log for benchmarks: saved links and the processor's results.

Plain data, no linklog imports, so any bench (or test) can build an org of
any size: ``make_org_log(10_000)`` is a log of 1,500 commits holding 10,000
links with about 5 KB of text each, in the shape the processor writes.
"""

from __future__ import annotations

import itertools
import random
from datetime import datetime, timedelta, timezone

BATCH = 20
TAGS = ("reading", "recipes", "travel", "python", "music", "science", "news", "design")
START = datetime(2026, 1, 1, tzinfo=timezone.utc)
_SYLLABLES = (
    "ka ri to ne sa mo lu vi an el or is ta de ro mi pa su ne co ly ba fe gu "
    "in ter pro con ment tion al er ly ous ble ful"
).split()


def _vocabulary(rng: random.Random, size: int = 6000) -> tuple[list[str], list[float]]:
    # Word frequencies in prose are roughly Zipfian: a few words are very
    # common, most are rare; the full-text index size depends on it.
    words = sorted(
        {"".join(rng.choices(_SYLLABLES, k=rng.randint(1, 4))) for _ in range(size * 2)}
    )[:size]
    rng.shuffle(words)
    # Cumulative weights: random.choices would otherwise re-add them on every call.
    return words, list(itertools.accumulate(1.0 / rank for rank in range(1, len(words) + 1)))


def _prose(rng: random.Random, words: list[str], cumulative: list[float], size: int) -> str:
    parts: list[str] = []
    length = 0
    while length < size:
        sentence = rng.choices(words, cum_weights=cumulative, k=rng.randint(6, 24))
        text = " ".join(sentence).capitalize() + "."
        parts.append(text)
        length += len(text) + 1
        if rng.random() < 0.15:
            parts.append("\n\n")
    return " ".join(parts)[:size]


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def make_org_log(n_links: int, text_bytes: int = 5000, seed: int = 0, *, org: str = "bench") -> list[dict]:
    """Commits 1..N of an org with ``n_links`` processed links.

    One client commit creates the tags; then, per 20 links: a client commit
    saving them (some tagged), a processor commit starting them and one
    with their results (metadata, ``text_bytes`` of text, summary, a tag
    suggestion, completed). Deterministic for a given seed.
    """
    rng = random.Random(seed)
    words, weights = _vocabulary(rng)
    commits: list[dict] = []
    counter = 0
    clock = START

    def event(name: str, args: dict) -> dict:
        nonlocal counter
        counter += 1
        return {"id": f"ev-{seed}-{counter:09d}", "name": name, "args": args, "at": _time(clock)}

    def commit(author: dict, events: list[dict]) -> None:
        version = len(commits) + 1
        commits.append({
            "version": version,
            "org": org,
            "batch_id": f"batch-{seed}-{version}",
            "committed_at": _time(clock),
            "author": author,
            "events": events,
        })

    client = {"kind": "client", "id": "device-1"}
    processor = {"kind": "processor", "id": "bench-processor", "epoch": 1}
    commit(client, [
        event("v1.TagCreated", {"id": f"tag-{n}", "name": name, "createdAt": _time(clock), "sortOrder": n})
        for n, name in enumerate(TAGS)
    ])
    for first in range(0, n_links, BATCH):
        ids = [f"link-{n:07d}" for n in range(first, min(first + BATCH, n_links))]
        saved = []
        for link_id in ids:
            clock += timedelta(seconds=rng.randint(1, 600))
            host = f"{rng.choice(words)}.{rng.choice(['com', 'org', 'net', 'io'])}"
            path = "/".join(rng.choices(words, k=rng.randint(1, 3)))
            saved.append(event("v1.LinkCreated", {
                "id": link_id, "url": f"https://{host}/{path}?utm_source=newsletter",
                "createdAt": _time(clock), "source": "ios"}))
            if rng.random() < 0.3:
                saved.append(event("v1.LinkTagged", {
                    "id": f"lt-{link_id}", "linkId": link_id,
                    "tagId": f"tag-{rng.randrange(len(TAGS))}", "createdAt": _time(clock)}))
        commit(client, saved)
        clock += timedelta(seconds=5)
        commit(processor, [
            event("v1.LinkProcessingStarted", {"linkId": link_id, "attempt": 1, "startedAt": _time(clock)})
            for link_id in ids
        ])
        clock += timedelta(seconds=20)
        results = []
        for link_id in ids:
            text = _prose(rng, words, weights, text_bytes)
            title = " ".join(rng.choices(words, cum_weights=weights, k=rng.randint(3, 9))).capitalize()
            results += [
                event("v1.LinkMetadataFetched", {
                    "linkId": link_id, "title": title,
                    "description": _prose(rng, words, weights, 160),
                    "siteName": rng.choice(words).capitalize(), "lang": "en",
                    "image": f"https://cdn.example.com/{link_id}.jpg"}),
                event("v1.LinkContentExtracted", {
                    "linkId": link_id, "text": text, "wordCount": len(text.split()),
                    "readingMinutes": max(1, len(text.split()) // 230)}),
                event("v1.LinkSummarized", {
                    "linkId": link_id, "summary": text[:300], "model": "extractive"}),
                event("v1.TagSuggested", {
                    "id": f"sg-{link_id}", "linkId": link_id,
                    "tagId": f"tag-{rng.randrange(len(TAGS))}", "score": round(rng.random(), 3)}),
                event("v1.LinkProcessingCompleted", {"linkId": link_id, "completedAt": _time(clock)}),
            ]
        commit(processor, results)
    return commits
