-- NIP-98 authorisations already used, shared by every instance: a captured Authorization header
-- cannot be replayed against another instance of the cluster within its time window.
CREATE TABLE nip98_used (
  sig   TEXT   PRIMARY KEY,
  until BIGINT NOT NULL
);
CREATE INDEX nip98_used_until ON nip98_used (until);
