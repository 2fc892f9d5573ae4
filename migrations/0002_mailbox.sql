-- Mailbox (issue 3).

-- Keyset paging by sequence number through one tag value (`#p` + seq_after): the index is
-- ordered by seq within (name, value), so a page is a range scan that stops at its limit, at
-- any depth, with no sort.
CREATE INDEX tags_value_seq ON tags (name, value, seq);

-- Delivery accounting: per authenticated agent, the highest sequence number of an event
-- addressed to it (`p` tag) that the relay has delivered to it. Written in coalesced batches.
CREATE TABLE mailbox_delivery (
  pubkey        TEXT    PRIMARY KEY,
  delivered_seq INTEGER NOT NULL DEFAULT 0,
  updated_at    INTEGER NOT NULL
) WITHOUT ROWID;
