-- Push wake on a shared database (as migrations/0003_push.sql for SQLite; times in milliseconds).
-- A wake is queued in the transaction that stores its event; any instance may release and send it:
-- rows are claimed with FOR UPDATE SKIP LOCKED, and a claimed push carries a lease (due_at moved past
-- the send's timeout), so an instance dying mid-send leads to one more attempt elsewhere, never none.

-- The relay's keypair, the same on every instance (agents encrypt wake registrations to it).
CREATE TABLE relay_identity (
  id         INTEGER PRIMARY KEY CHECK (id = 1),
  secret_key TEXT    NOT NULL
);

CREATE TABLE push_owners (
  owner         TEXT   COLLATE "C" PRIMARY KEY,
  event_created BIGINT NOT NULL,
  last_wake_at  BIGINT,
  window_start  BIGINT NOT NULL DEFAULT 0,
  window_count  INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE push_channels (
  owner         TEXT   COLLATE "C" NOT NULL,
  platform      TEXT   NOT NULL CHECK (platform IN ('apns', 'fcm')),
  token         TEXT   NOT NULL,
  topic         TEXT   NOT NULL DEFAULT '',
  environment   TEXT   NOT NULL DEFAULT '',
  mode          TEXT   NOT NULL CHECK (mode IN ('background', 'alert')),
  registered_at BIGINT NOT NULL,
  PRIMARY KEY (owner, platform, token)
);

CREATE TABLE push_wakes (
  owner     TEXT   COLLATE "C" PRIMARY KEY,
  seq       BIGINT NOT NULL,
  queued_at BIGINT NOT NULL,
  due_at    BIGINT NOT NULL
);
CREATE INDEX push_wakes_due ON push_wakes (due_at);

CREATE TABLE push_deliveries (
  owner     TEXT    COLLATE "C" NOT NULL,
  platform  TEXT    NOT NULL,
  token     TEXT    NOT NULL,
  seq       BIGINT  NOT NULL,
  queued_at BIGINT  NOT NULL,
  attempts  INTEGER NOT NULL DEFAULT 0,
  due_at    BIGINT  NOT NULL,
  PRIMARY KEY (owner, platform, token)
);
CREATE INDEX push_deliveries_due ON push_deliveries (due_at);
