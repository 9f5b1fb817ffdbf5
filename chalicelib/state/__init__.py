"""An org's state: a SQLite database built only by applying its log (DESIGN §5).

- schema: the tables, SCHEMA_HASH, new_database(), version(), processor_epoch()
- apply: apply_commits(), the one way state changes
- work: links_needing_work(), next_due(), attempts_of(), statuses_of()
- queries: the read side for the API (links, search, read-only SQL)
"""

from chalicelib.state.apply import ApplyStats, CommitOutOfOrder, apply_commits
from chalicelib.state.schema import SCHEMA_HASH, new_database, processor_epoch, version
from chalicelib.state.work import attempts_of, links_needing_work, next_due, statuses_of

__all__ = [
    "SCHEMA_HASH",
    "ApplyStats",
    "CommitOutOfOrder",
    "apply_commits",
    "attempts_of",
    "links_needing_work",
    "new_database",
    "next_due",
    "processor_epoch",
    "statuses_of",
    "version",
]
