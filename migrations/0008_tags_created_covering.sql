-- Newest-first tag walks (`#p` with since/until/limit, the standard way to read a mailbox) read each match's seq
-- from the index itself: tags_lookup held only the tags row's rowid, so every match cost a lookup in the tags table
-- (rows in arrival order, one page each) before the event's. This index carries seq and replaces it, the same size
-- give or take the seq, so a write maintains as many index entries as before.
CREATE INDEX tags_created_seq ON tags (name, value, created_at DESC, seq);
DROP INDEX tags_lookup;
