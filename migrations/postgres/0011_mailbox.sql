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
