-- The agent mailbox on the cluster store (relay/mailbox/postgres.ts), as migrations/0002 and 0005 (and seq_marks) keep it
-- on SQLite: per agent the highest inbox seq delivered to it (any instance may raise it, never lower it),
-- refusals not yet told to the agent, and the marks of how far the sequence had got (fresh senders).
CREATE TABLE mailbox_delivery (
  pubkey        TEXT   COLLATE "C" PRIMARY KEY,
  delivered_seq BIGINT NOT NULL DEFAULT 0,
  updated_at    BIGINT NOT NULL
);
CREATE TABLE mailbox_refused (
  pubkey  TEXT   COLLATE "C" PRIMARY KEY,
  refused BIGINT NOT NULL,
  since   BIGINT NOT NULL
);
CREATE TABLE seq_marks (
  at  BIGINT PRIMARY KEY,
  seq BIGINT NOT NULL
);
-- Mail admitted by the quota policy of some instance and not yet stored (relay/store/postgres-mailbox.ts):
-- counted with the stored mail when a mailbox near its limit admits more, under a per-recipient advisory
-- lock, so two instances cannot both take a mailbox's last place. A row older than 60 s no longer counts.
CREATE TABLE mailbox_admissions (
  recipient TEXT   COLLATE "C" NOT NULL,
  id        TEXT   COLLATE "C" NOT NULL,
  at        BIGINT NOT NULL,
  PRIMARY KEY (recipient, id)
);
CREATE INDEX mailbox_admissions_at ON mailbox_admissions (at);
