-- Replication (issue 21). One row per upstream relay (URL and filter): the highest upstream sequence number whose
-- event is committed here. It is written in the same transaction as the replicated event, so after a crash the
-- replica resumes exactly after the last event it stored: nothing is fetched twice and nothing is skipped.
CREATE TABLE replication_cursors (
  upstream   TEXT    PRIMARY KEY,
  cursor     INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Which relay (its NIP-11 pubkey) a replicated event was stored from. Such an event is never served back to a
-- connection authenticated as that relay, so two relays replicating each other do not echo each other's events.
CREATE TABLE event_origins (
  seq    INTEGER PRIMARY KEY,
  origin TEXT    NOT NULL
);
