-- Events, with the relay-local sequence number as the primary key. AUTOINCREMENT guarantees a
-- sequence number is never reused, even after the newest event is deleted.
CREATE TABLE events (
  seq        INTEGER PRIMARY KEY AUTOINCREMENT,
  id         TEXT    NOT NULL UNIQUE,
  pubkey     TEXT    NOT NULL,
  created_at INTEGER NOT NULL,
  kind       INTEGER NOT NULL,
  d_tag      TEXT,            -- set for addressable kinds ('' when the event has no d tag)
  expires_at INTEGER,         -- NIP-40
  raw        TEXT    NOT NULL -- the verified event's JSON, sent as is
);
CREATE INDEX events_created   ON events (created_at DESC, id);
CREATE INDEX events_pubkey    ON events (pubkey, created_at DESC);
CREATE INDEX events_kind      ON events (kind, created_at DESC);
CREATE INDEX events_pk_kind   ON events (pubkey, kind, created_at DESC);
CREATE INDEX events_address   ON events (kind, pubkey, d_tag) WHERE d_tag IS NOT NULL;
CREATE INDEX events_expires   ON events (expires_at) WHERE expires_at IS NOT NULL;

-- One row per single-letter tag, so tag filters are index lookups.
CREATE TABLE tags (
  seq        INTEGER NOT NULL REFERENCES events (seq) ON DELETE CASCADE,
  name       TEXT    NOT NULL,
  value      TEXT    NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX tags_lookup ON tags (name, value, created_at DESC);
CREATE INDEX tags_seq    ON tags (seq);

-- NIP-09: ids deleted by their author stay refused on resubmission. Keyed by (id, pubkey): a
-- stranger's request naming an id must not shadow the real author's.
CREATE TABLE deleted_ids (
  id     TEXT NOT NULL,
  pubkey TEXT NOT NULL,
  PRIMARY KEY (id, pubkey)
) WITHOUT ROWID;

-- NIP-09 deletion of an address: versions up to `until` are gone and refused.
CREATE TABLE deleted_addresses (
  kind   INTEGER NOT NULL,
  pubkey TEXT    NOT NULL,
  d_tag  TEXT    NOT NULL,
  until  INTEGER NOT NULL,
  PRIMARY KEY (kind, pubkey, d_tag)
) WITHOUT ROWID;
