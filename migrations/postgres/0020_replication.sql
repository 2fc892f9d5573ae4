-- Replication on PostgreSQL (a cluster can be a replica): the same tables as SQLite's migrations 0006 and 0007.
-- (Numbered 0020 so that other PostgreSQL migrations of this session, 0006 and 0010-0011, keep theirs.)

-- One row per upstream relay (URL and filter): the highest upstream sequence number whose event is committed
-- here, written in the same transaction as the replicated events (a restart resumes exactly after them).
-- Several instances replicating one upstream keep the greatest: each commits the upstream's events in order.
CREATE TABLE replication_cursors (
  upstream   TEXT   PRIMARY KEY,
  cursor     BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);

-- The origin chain of a replicated event (relay pubkeys, comma-separated, nearest first), in the event's row.
ALTER TABLE events ADD COLUMN origin TEXT;

-- Ids of replicated events this relay's policies refused (NIP-77 repair does not fetch them again); bounded.
CREATE TABLE replication_refused (
  id     TEXT   COLLATE "C" PRIMARY KEY,
  reason TEXT   NOT NULL,
  at     BIGINT NOT NULL
);
CREATE INDEX replication_refused_at ON replication_refused (at);

-- Every relay named in a stored event's origin chain.
CREATE TABLE replication_peers (
  pubkey TEXT PRIMARY KEY
);
