"""The shape of an org's state database, and the hash that names it.

The state is a cache of the log (DESIGN §5): every table here is filled only
by chalicelib.state.apply. Snapshot keys carry SCHEMA_HASH, so changing any
statement below makes every existing snapshot invisible instead of wrong.
"""

import hashlib

import apsw

SCHEMA = """
CREATE TABLE meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL,
    schema_hash TEXT NOT NULL,
    processor_epoch INTEGER NOT NULL,
    duplicate_events INTEGER NOT NULL,
    unknown_events INTEGER NOT NULL,
    skipped_events INTEGER NOT NULL,
    fenced_commits INTEGER NOT NULL
);

CREATE TABLE links (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    normalized_url TEXT UNIQUE,
    domain TEXT,
    source TEXT,
    created_at TEXT NOT NULL,
    deleted_at TEXT,
    completed_at TEXT,
    created_version INTEGER NOT NULL
);

CREATE TABLE link_aliases (
    alias_id TEXT PRIMARY KEY,
    link_id TEXT NOT NULL REFERENCES links(id),
    url TEXT NOT NULL,
    created_version INTEGER NOT NULL
);

CREATE TABLE link_status (
    link_id TEXT PRIMARY KEY REFERENCES links(id),
    status TEXT NOT NULL CHECK (status IN ('pending', 'completed', 'failed', 'cancelled')),
    attempts INTEGER NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    next_retry_at TEXT,
    error_code TEXT,
    error_message TEXT,
    retryable INTEGER,
    reason TEXT
);
CREATE INDEX link_status_by_status ON link_status (status, next_retry_at);

CREATE TABLE link_metadata (
    link_id TEXT PRIMARY KEY REFERENCES links(id),
    title TEXT,
    description TEXT,
    image TEXT,
    site_name TEXT,
    favicon TEXT,
    canonical_url TEXT,
    author TEXT,
    published_at TEXT,
    lang TEXT
);

CREATE TABLE link_text (
    link_id TEXT PRIMARY KEY REFERENCES links(id),
    text TEXT NOT NULL,
    word_count INTEGER NOT NULL,
    reading_minutes INTEGER NOT NULL
);

CREATE TABLE link_summaries (
    link_id TEXT PRIMARY KEY REFERENCES links(id),
    summary TEXT NOT NULL,
    model TEXT,
    -- The summarizer the org chose, when it failed and the extractive one stood in.
    fallback_from TEXT,
    fallback_reason TEXT
);

-- The documents of the full-text index: links with metadata or text. The
-- view holds exactly the rows the index holds, so FTS5's integrity check
-- can compare the two.
CREATE VIEW link_documents AS
    SELECT links.seq AS seq, link_metadata.title AS title,
           link_metadata.description AS description, link_text.text AS text
    FROM links
    LEFT JOIN link_metadata ON link_metadata.link_id = links.id
    LEFT JOIN link_text ON link_text.link_id = links.id
    WHERE link_metadata.link_id IS NOT NULL OR link_text.link_id IS NOT NULL;

CREATE VIRTUAL TABLE link_search USING fts5(
    title, description, text,
    content = 'link_documents', content_rowid = 'seq',
    tokenize = 'porter unicode61 remove_diacritics 2'
);

CREATE TABLE tags (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    sort_order REAL,
    created_at TEXT NOT NULL,
    deleted_at TEXT
);

CREATE TABLE link_tags (
    link_id TEXT NOT NULL REFERENCES links(id),
    tag_id TEXT NOT NULL REFERENCES tags(id),
    created_at TEXT,
    PRIMARY KEY (link_id, tag_id)
);
CREATE INDEX link_tags_by_tag ON link_tags (tag_id);

CREATE TABLE tag_suggestions (
    link_id TEXT NOT NULL REFERENCES links(id),
    tag_id TEXT NOT NULL REFERENCES tags(id),
    id TEXT NOT NULL,
    score REAL NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('suggested', 'accepted', 'dismissed')),
    PRIMARY KEY (link_id, tag_id)
);

-- Tags the org does not have yet, suggested from the page's keyphrases
-- (when the org's tagSuggestions is existing+new); tag_id is the tag the
-- user accepted it as.
CREATE TABLE new_tag_suggestions (
    link_id TEXT NOT NULL REFERENCES links(id),
    name TEXT NOT NULL,
    id TEXT NOT NULL,
    score REAL NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('suggested', 'accepted', 'dismissed')),
    tag_id TEXT REFERENCES tags(id),
    PRIMARY KEY (link_id, name)
);

-- Every suggestion id ever given: one of an existing tag (tag_id) or of a
-- new one (name).
CREATE TABLE tag_suggestion_ids (
    id TEXT PRIMARY KEY,
    link_id TEXT NOT NULL,
    tag_id TEXT,
    name TEXT,
    CHECK ((tag_id IS NULL) != (name IS NULL))
);

-- The org's choices (chalicelib.orgsettings); NULL: never chosen, the default holds.
CREATE TABLE org_settings (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    summarizer TEXT,
    summarizer_timeout REAL,
    tag_suggestions TEXT,
    changed_at TEXT,
    changed_version INTEGER NOT NULL
);

CREATE TABLE applied_events (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE batches (
    batch_id TEXT PRIMARY KEY,
    version INTEGER NOT NULL
) WITHOUT ROWID;
"""

SCHEMA_HASH = hashlib.sha256(SCHEMA.encode("utf-8")).hexdigest()[:16]


def new_database() -> apsw.Connection:
    """An empty in-memory state database at version 0 of this schema."""
    db = apsw.Connection(":memory:")
    with db:
        db.execute(SCHEMA)
        db.execute(
            "INSERT INTO meta VALUES (1, 0, ?, 0, 0, 0, 0, 0)",
            (SCHEMA_HASH,),
        )
    return db


def open_scratch_copy(path: str) -> apsw.Connection:
    """The state database in the file at ``path``, opened as a scratch copy.

    The file is a disposable copy of a snapshot (the log is the truth), so
    nothing is gained by syncing it or journaling to disk: the journal lives
    in memory (a rollback still works) and writes are never synced. Raises
    apsw.Error for a file SQLite cannot read.
    """
    db = apsw.Connection(path)
    try:
        db.execute("PRAGMA journal_mode = MEMORY")
        db.execute("PRAGMA synchronous = OFF")
    except apsw.Error:
        db.close()
        raise
    return db


def version(db: apsw.Connection) -> int:
    """The log version the database has applied (0 when empty)."""
    return db.execute("SELECT version FROM meta").get


def processor_epoch(db: apsw.Connection) -> int:
    """The highest epoch of the processor commits the database has applied (0 if none)."""
    return db.execute("SELECT processor_epoch FROM meta").get


def schema_hash_of(db: apsw.Connection) -> str | None:
    """The schema hash recorded in the database, or None if it has no meta row."""
    try:
        return db.execute("SELECT schema_hash FROM meta").get
    except apsw.SQLError:
        return None
