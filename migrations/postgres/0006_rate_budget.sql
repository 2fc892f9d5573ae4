-- Cluster-wide rate limits (relay/policies/shared-rate-limit.ts): one token bucket per rate and key,
-- which the instances spend from in short leases exchanged every 250 ms, and the instances alive
-- (their count sizes each one's credit). UNLOGGED: not written to the WAL several times a second;
-- a PostgreSQL crash empties them, and the buckets start full again, as a restarted relay's do.
CREATE UNLOGGED TABLE rate_budget (
  bucket  TEXT             NOT NULL,
  key     TEXT             NOT NULL,
  cap     DOUBLE PRECISION NOT NULL,
  tokens  DOUBLE PRECISION NOT NULL,
  at_ms   BIGINT           NOT NULL,
  granted DOUBLE PRECISION NOT NULL DEFAULT 0,
  PRIMARY KEY (bucket, key)
);
CREATE INDEX rate_budget_at ON rate_budget (at_ms);
CREATE UNLOGGED TABLE rate_instances (
  instance TEXT   PRIMARY KEY,
  seen_ms  BIGINT NOT NULL
);
