-- Presence across instances: one row per agent authenticated on an instance, refreshed by that
-- instance's heartbeat and removed when its last connection closes. A crashed instance's rows
-- expire on their own (expires_at, milliseconds since the epoch).
CREATE TABLE presence (
  pubkey     TEXT   COLLATE "C" NOT NULL,
  instance   TEXT   NOT NULL,
  expires_at BIGINT NOT NULL,
  PRIMARY KEY (pubkey, instance)
);
CREATE INDEX presence_expires ON presence (expires_at);
