-- Relay management (NIP-86): moderation lists, relay settings changed at run time, and an audit
-- trail of every management call. Policies read these lists from memory; this is their durable copy.
CREATE TABLE banned_pubkeys (
  pubkey     TEXT    PRIMARY KEY,
  reason     TEXT    NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE allowed_pubkeys (
  pubkey     TEXT    PRIMARY KEY,
  reason     TEXT    NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE banned_events (
  id         TEXT    PRIMARY KEY,
  reason     TEXT    NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE allowed_events (
  id         TEXT    PRIMARY KEY,
  reason     TEXT    NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL
) WITHOUT ROWID;

-- A kind is either explicitly allowed or disallowed; when any kind is allowed, only allowed kinds are accepted.
CREATE TABLE kind_rules (
  kind       INTEGER PRIMARY KEY,
  rule       TEXT    NOT NULL CHECK (rule IN ('allow', 'disallow')),
  created_at INTEGER NOT NULL
);

CREATE TABLE blocked_ips (
  ip         TEXT    PRIMARY KEY,
  reason     TEXT    NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL
) WITHOUT ROWID;

-- NIP-11 fields changed through the API (name, description, icon); they override the configuration.
CREATE TABLE relay_settings (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE admin_audit (
  at     INTEGER NOT NULL,
  pubkey TEXT    NOT NULL,
  method TEXT    NOT NULL,
  params TEXT    NOT NULL
);
CREATE INDEX admin_audit_at ON admin_audit (at);
