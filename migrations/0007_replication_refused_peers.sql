-- Replication (issue 21): ids of replicated events this relay's own policies refused (a banned author, a kind it
-- does not take, an expired or superseded event...). The cursor moves past them; this table keeps the NIP-77 first
-- sync and repair from fetching them again every time. Bounded: the oldest rows are dropped past 100,000.
CREATE TABLE replication_refused (
  id     TEXT    PRIMARY KEY,
  reason TEXT    NOT NULL,
  at     INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX replication_refused_at ON replication_refused (at);

-- Every relay (NIP-11 pubkey) named in a stored event's origin chain (event_origins.origin now holds the chain,
-- comma-separated, nearest first): a connection authenticated as one of them is checked against the chains.
CREATE TABLE replication_peers (
  pubkey TEXT PRIMARY KEY
) WITHOUT ROWID;
