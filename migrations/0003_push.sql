-- Push wake (issue 10). Registrations are private: these rows are never served to clients and
-- never logged. All times are relay-clock milliseconds unless noted.

-- One row per agent that ever registered; kept after its channels are removed so that an older
-- registration event cannot be replayed over a newer one.
CREATE TABLE push_owners (
  owner         TEXT    PRIMARY KEY,         -- the agent's pubkey (the registration event's author)
  event_created INTEGER NOT NULL,            -- created_at (seconds) of the registration in force
  last_wake_at  INTEGER,                     -- when the last wake was released to the senders
  window_start  INTEGER NOT NULL DEFAULT 0,  -- start of the current one-hour per-agent rate window
  window_count  INTEGER NOT NULL DEFAULT 0   -- wakes released in that window
) WITHOUT ROWID;

-- The devices that wake an agent.
CREATE TABLE push_channels (
  owner         TEXT    NOT NULL,
  platform      TEXT    NOT NULL CHECK (platform IN ('apns', 'fcm')),
  token         TEXT    NOT NULL,
  topic         TEXT    NOT NULL DEFAULT '', -- APNs topic (bundle id)
  environment   TEXT    NOT NULL DEFAULT '', -- APNs: 'sandbox' or 'production'
  mode          TEXT    NOT NULL CHECK (mode IN ('background', 'alert')),
  registered_at INTEGER NOT NULL,            -- refreshed by every registration naming this token
  PRIMARY KEY (owner, platform, token)
) WITHOUT ROWID;
CREATE INDEX push_channels_token ON push_channels (platform, token);

-- At most one pending wake per agent; it keeps the first sequence number that caused it.
CREATE TABLE push_wakes (
  owner     TEXT    PRIMARY KEY,
  seq       INTEGER NOT NULL,
  queued_at INTEGER NOT NULL,
  due_at    INTEGER NOT NULL                 -- pushed later by the minimum interval and the rate caps
) WITHOUT ROWID;
CREATE INDEX push_wakes_due ON push_wakes (due_at);

-- A released wake, one row per device, with its retry state. A row being sent has its due_at
-- moved past the request timeout, so a crash mid-send leads to one more attempt, never to none.
CREATE TABLE push_deliveries (
  owner     TEXT    NOT NULL,
  platform  TEXT    NOT NULL,
  token     TEXT    NOT NULL,
  seq       INTEGER NOT NULL,
  queued_at INTEGER NOT NULL,                -- the wake expires a TTL after this
  attempts  INTEGER NOT NULL DEFAULT 0,
  due_at    INTEGER NOT NULL,
  PRIMARY KEY (owner, platform, token)
) WITHOUT ROWID;
CREATE INDEX push_deliveries_due ON push_deliveries (due_at);
