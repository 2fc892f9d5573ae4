-- Mail refused because a mailbox was full (issue 14.4): per recipient, how many events and since when, until its
-- agent is told at its next AUTH. Written in the ledger's coalesced flushes, so it survives a restart.
CREATE TABLE mailbox_refused (
  pubkey  TEXT    PRIMARY KEY,
  refused INTEGER NOT NULL,
  since   INTEGER NOT NULL
) WITHOUT ROWID;

-- Where the sequence stood at a given time (written every hour or so, kept for two ages): a sender whose first
-- stored event has a seq at or below the mark of `ROOST_MAILBOX_FRESH_SECONDS` ago is established, not fresh.
CREATE TABLE seq_marks (
  at  INTEGER PRIMARY KEY,
  seq INTEGER NOT NULL
);
