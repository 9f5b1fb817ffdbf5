"""How much of the article linklog's text keeps, beside readability-lxml and trafilatura alone.

Two sets of real pages, when ../shared/testdata is present:

- trafilatura-eval (949 pages, many languages and kinds of site), scored
  the corpus's own way: whitespace collapsed, a ``with`` snippet found in
  the text is a true positive (missing: a false negative), a ``without``
  snippet found is a false positive; precision, recall and F1 over all
  pages together. trafilatura's figure here is its article as linklog
  reads it (``output_format="html"`` turned into text), the candidate
  the combination starts from.
- readability-pages (65 news and blog pages): how much of readability's
  article linklog's text keeps, as the share of readability's words
  (counted with repeats) that are in ours, overall and page by page.

Each page is read once: the two extractors' articles are the candidates
linklog combines, so all three figures come from the same run.

    python -m bench.bench_extraction
"""

from __future__ import annotations

import gzip
import json
import re
import time
from collections import Counter
from pathlib import Path

from chalicelib.links.document import parse_document
from chalicelib.links.text import article_candidates, combine_articles

TESTDATA = Path(__file__).resolve().parents[1].parent / "shared" / "testdata"
EVAL_DIR = TESTDATA / "trafilatura-eval"
READABILITY_DIR = TESTDATA / "readability-pages"
READABILITY_BASE_URL = "http://fakehost/test/page.html"
EXTRACTORS = ("linklog", "readability", "trafilatura")
_WORD = re.compile(r"\w+")


def _flat(text: str) -> str:
    return " ".join(text.split())


def snippet_counts(text: str, judgement: dict) -> tuple[int, int, int, int]:
    """True positives, false negatives, false positives, true negatives of one page."""
    flat = _flat(text)
    found = sum(_flat(s) in flat for s in judgement["with"])
    wrongly = sum(_flat(s) in flat for s in judgement["without"])
    return found, len(judgement["with"]) - found, wrongly, len(judgement["without"]) - wrongly


def precision_recall_f1(tp: int, fn: int, fp: int, tn: int = 0) -> dict[str, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


def texts_of(html: bytes | str, url: str) -> dict[str, str]:
    """Each extractor's text of one page: linklog's, and the two it combines."""
    trafilatura_text, readability_text = article_candidates(parse_document(html), url)
    return {
        "linklog": combine_articles(trafilatura_text, readability_text),
        "readability": readability_text,
        "trafilatura": trafilatura_text,
    }


def score_eval_set(directory: Path = EVAL_DIR) -> dict:
    """Precision, recall and F1 of each extractor over the whole development set."""
    judgements = json.loads((directory / "evaldata.json").read_text(encoding="utf-8"))
    totals = {name: [0, 0, 0, 0] for name in EXTRACTORS}
    for url, judgement in judgements.items():
        html = gzip.decompress((directory / "html" / judgement["file"]).read_bytes())
        for name, text in texts_of(html, url).items():
            for i, count in enumerate(snippet_counts(text, judgement)):
                totals[name][i] += count
    return {"pages": len(judgements), **{name: precision_recall_f1(*counts) for name, counts in totals.items()}}


def readability_words_kept(readability_text: str, ours: str) -> tuple[int, int]:
    """How many of readability's words (with repeats) are in ``ours``, and how many it has."""
    reference = Counter(_WORD.findall(readability_text.lower()))
    kept = reference & Counter(_WORD.findall(ours.lower()))
    return sum(kept.values()), sum(reference.values())


def score_readability_pages(directory: Path = READABILITY_DIR) -> dict:
    """Share of readability's words linklog keeps on the 65 pages."""
    kept_words = all_words = 0
    shares = []
    for page in sorted(p for p in directory.iterdir() if (p / "source.html").is_file()):
        texts = texts_of((page / "source.html").read_bytes(), READABILITY_BASE_URL)
        kept, total = readability_words_kept(texts["readability"], texts["linklog"])
        kept_words += kept
        all_words += total
        shares.append(kept / total if total else 1.0)
    return {
        "pages": len(shares),
        "readability_words_kept": round(kept_words / all_words, 4) if all_words else None,
        "pages_keeping_90_percent": sum(share >= 0.9 for share in shares),
        "worst_page_share_kept": round(min(shares), 4) if shares else None,
    }


def main() -> dict:
    """Run the bench once; return its figures."""
    if not TESTDATA.is_dir():
        return {"bench": "extraction", "skipped": f"no test data at {TESTDATA}"}
    started = time.perf_counter()
    figures = {"bench": "extraction", "development_set": score_eval_set()}
    figures["readability_pages"] = score_readability_pages()
    figures["seconds"] = round(time.perf_counter() - started, 1)
    return figures


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
