"""Link processing: what a saved link's page says about itself.

``extract_page(html, url)`` is the public, fetch-free entry point; the
processor uses ``chalicelib.links.pipeline.make_link_processor``.
"""

from __future__ import annotations


def extract_page(html: str | bytes, url: str) -> dict:
    """Metadata and readable text of a page's HTML; ``url`` is where it was found.

    Returns ``title``, ``description``, ``image``, ``site_name``,
    ``favicon``, ``canonical_url``, ``author``, ``published_at``, ``lang``
    (each a string or None), ``text`` (str, possibly empty) and
    ``word_count``. Bytes are decoded as a browser would (BOM, <meta
    charset>, UTF-8, else detection). Never raises for a bad page.
    """
    # Imported here, not at the top: everything that imports the package
    # (the API reads chalicelib.links.outcome) would otherwise load lxml,
    # readability and chardet on a cold start without needing them.
    from dataclasses import asdict

    from chalicelib.links.document import parse_document
    from chalicelib.links.metadata import extract_metadata
    from chalicelib.links.text import readable_text

    tree = parse_document(html)
    metadata = extract_metadata(tree, url)
    readable = readable_text(tree, url)
    return {**asdict(metadata), "text": readable.text, "word_count": readable.word_count}
