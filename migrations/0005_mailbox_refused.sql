-- Mail refused because a mailbox was full (issue 14.4): per recipient, how many events and since when, until its
-- agent is told at its next AUTH. Written in the ledger's coalesced flushes, so it survives a restart.
CREATE TABLE mailbox_refused (
  pubkey  TEXT    PRIMARY KEY,
  refused INTEGER NOT NULL,
  since   INTEGER NOT NULL
) WITHOUT ROWID;
