-- NIP-86 changes shared by every relay on this database: each instance applies the log, in order,
-- to its in-memory moderation lists and settings (at start, then as entries arrive by NOTIFY
-- roost_admin). Numbered under an exclusive table lock, so numbers become visible in commit order.
CREATE TABLE admin_log (
  n      BIGINT PRIMARY KEY,
  at     BIGINT NOT NULL,
  pubkey TEXT   NOT NULL,
  method TEXT   NOT NULL,
  params JSONB  NOT NULL
);
