"""Article text on real pages of ../shared/testdata/trafilatura-eval, scored with its snippets.

The whole corpus is scored by ``python -m bench.bench_extraction``; this
test scores every tenth page, enough to tell the combination from either
extractor alone (readability-lxml alone scores 0.885 F1 on these pages,
trafilatura alone keeps fewer of the article's snippets).
"""

from __future__ import annotations

import gzip
import json

import pytest

from bench.bench_extraction import EVAL_DIR, precision_recall_f1, snippet_counts, texts_of


def test_snippet_scoring_follows_the_corpus_method():
    judgement = {"with": ["main  text", "missing"], "without": ["Menu", "Footer"]}

    assert snippet_counts("Menu\n\nthe main\ntext here", judgement) == (1, 1, 1, 1)
    assert precision_recall_f1(1, 1, 1, 1) == {"precision": 0.5, "recall": 0.5, "f1": 0.5}
    assert precision_recall_f1(0, 0, 0, 0)["f1"] == 0.0


def test_every_tenth_page_scores_above_both_extractors_alone():
    if not EVAL_DIR.is_dir():
        pytest.skip(f"../shared/testdata not found: {EVAL_DIR}")
    judgements = json.loads((EVAL_DIR / "evaldata.json").read_text(encoding="utf-8"))
    totals = {"linklog": [0, 0, 0, 0], "readability": [0, 0, 0, 0], "trafilatura": [0, 0, 0, 0]}
    for url, judgement in list(judgements.items())[1::10]:
        html = gzip.decompress((EVAL_DIR / "html" / judgement["file"]).read_bytes())
        for name, text in texts_of(html, url).items():
            totals[name] = [a + b for a, b in zip(totals[name], snippet_counts(text, judgement))]
    scores = {name: precision_recall_f1(*counts) for name, counts in totals.items()}

    assert scores["linklog"]["f1"] >= 0.92, scores
    assert scores["linklog"]["f1"] > max(scores["readability"]["f1"], scores["trafilatura"]["f1"]), scores
    assert scores["linklog"]["recall"] > scores["trafilatura"]["recall"], scores
