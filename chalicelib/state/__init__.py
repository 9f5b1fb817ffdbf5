"""An org's state: a SQLite database built only by applying its log (DESIGN §5).

- schema: the tables, SCHEMA_HASH, new_database(), version()
- apply: apply_commits(), the one way state changes
- work: links_needing_work(), next_retry_due()
- queries: the read side for the API (links, search, read-only SQL)
"""

from chalicelib.state.apply import ApplyStats, CommitOutOfOrder, apply_commits
from chalicelib.state.schema import SCHEMA_HASH, new_database, version
from chalicelib.state.work import links_needing_work, next_retry_due

__all__ = [
    "SCHEMA_HASH",
    "ApplyStats",
    "CommitOutOfOrder",
    "apply_commits",
    "links_needing_work",
    "new_database",
    "next_retry_due",
    "version",
]
