-- Claims of the key event and task policies (relay/policies/later-reads.ts): an event that passes holds
-- its keys (`prev:<id>` of a rotation or revocation, `key:<pubkey>` it reveals, `task:<prev>` of a task
-- step) until it is stored or refused. The primary key is what lets only one of two events racing on
-- different instances through; a claim older than 60 s (its instance died) is taken over.
CREATE TABLE policy_claims (
  key TEXT   COLLATE "C" PRIMARY KEY,
  id  TEXT   COLLATE "C" NOT NULL,
  at  BIGINT NOT NULL
);
CREATE INDEX policy_claims_at ON policy_claims (at);
