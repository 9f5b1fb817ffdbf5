"""Bookmark files in and out: the formats other link savers and browsers use.

Importing turns a file into ``ImportedLink`` records (``read_links``);
exporting writes an org's links as Netscape HTML, JSON or CSV. Only the
standard library is used, so the API functions can use these too.

- record: ImportedLink, ImportFileError, the cleaning of titles, tags, times
- detect: which format a file is in; read_links(data, format)
- one module per format: netscape, pocket, instapaper, karakeep, linkwarden,
  omnivore, wallabag, urllist, linklog_json (linklog's own export)
- screen: which imported URLs are refused (and why), and duplicates
- plan: screened bookmarks into the events and batches an import pushes,
  for both importers (``linklog import`` and ``POST /v1/import``)
- export: the writers (Netscape HTML, JSON, CSV), streaming
"""

from chalicelib.formats.detect import FORMATS, detect_format, read_links
from chalicelib.formats.record import ImportedLink, ImportFileError

__all__ = ["FORMATS", "ImportFileError", "ImportedLink", "detect_format", "read_links"]
