-- PostgreSQL schema of the cluster store (forward-only, like migrations/*.sql for SQLite; never edit
-- a shipped file). Text columns compared by the query builder use the "C" collation: byte order, as
-- SQLite compares, so `ORDER BY created_at DESC, id` ties break the same way on both.

-- Events, keyed by the cluster-wide sequence number that seq_counter hands out in commit order.
CREATE TABLE events (
  seq        BIGINT  PRIMARY KEY,
  id         TEXT    COLLATE "C" NOT NULL UNIQUE,
  pubkey     TEXT    COLLATE "C" NOT NULL,
  created_at BIGINT  NOT NULL,
  kind       INTEGER NOT NULL,
  d_tag      TEXT    COLLATE "C",  -- set for addressable kinds ('' when the event has no d tag)
  expires_at BIGINT,               -- NIP-40
  raw        TEXT    NOT NULL      -- the verified event's JSON, sent as is (jsonb would reorder it)
);
CREATE INDEX events_created ON events (created_at DESC, id);
CREATE INDEX events_pubkey  ON events (pubkey, created_at DESC);
CREATE INDEX events_kind    ON events (kind, created_at DESC);
CREATE INDEX events_pk_kind ON events (pubkey, kind, created_at DESC);
CREATE INDEX events_address ON events (kind, pubkey, d_tag) WHERE d_tag IS NOT NULL;
CREATE INDEX events_expires ON events (expires_at) WHERE expires_at IS NOT NULL;

-- One row per distinct single-letter tag, so tag filters are index lookups.
CREATE TABLE tags (
  seq        BIGINT NOT NULL REFERENCES events (seq) ON DELETE CASCADE,
  name       TEXT   COLLATE "C" NOT NULL,
  value      TEXT   COLLATE "C" NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE INDEX tags_lookup    ON tags (name, value, created_at DESC);
CREATE INDEX tags_value_seq ON tags (name, value, seq);
CREATE INDEX tags_seq       ON tags (seq);

-- NIP-09: ids deleted by their author stay refused on resubmission.
CREATE TABLE deleted_ids (
  id     TEXT COLLATE "C" NOT NULL,
  pubkey TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY (id, pubkey)
);

-- NIP-09 deletion of an address: versions up to `until` are gone and refused.
CREATE TABLE deleted_addresses (
  kind   INTEGER NOT NULL,
  pubkey TEXT    COLLATE "C" NOT NULL,
  d_tag  TEXT    COLLATE "C" NOT NULL,
  until  BIGINT  NOT NULL,
  PRIMARY KEY (kind, pubkey, d_tag)
);

-- The sequencer: one row. Every write transaction locks it first and sets it to its last seq just
-- before committing, so sequence numbers are handed out in commit order (docs/architecture.md).
CREATE TABLE seq_counter (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  n  BIGINT  NOT NULL
);
INSERT INTO seq_counter (id, n) VALUES (1, 0);
