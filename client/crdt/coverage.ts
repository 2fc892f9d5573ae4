import * as Y from 'yjs';

/**
 * A precise test of which deltas a snapshot makes redundant: every struct inside the snapshot's state vector
 * and every deletion inside its delete set. Members (who have Yjs) use it; the relay, which does not, uses
 * the coarser `isRangeCovered` on the deltas' `clock` tags (wire.ts).
 */
export function createCoverageCheck(snapshotUpdate: Uint8Array): (delta: Uint8Array) => boolean {
  const { ds } = Y.decodeUpdate(snapshotUpdate);
  const sv = Y.decodeStateVector(Y.encodeStateVectorFromUpdate(snapshotUpdate));
  const snap = Y.createSnapshot(ds, sv);
  return (delta) => Y.snapshotContainsUpdate(snap, delta);
}

/**
 * True when a snapshot's claimed state vector (its `sv` tag) is exactly what its update holds. A relay
 * that expires deltas on the claim alone trusts the signer; a member can check the claim before relying on it.
 */
export function isSnapshotConsistent(snapshotUpdate: Uint8Array, claimed: ReadonlyMap<number, number>): boolean {
  let real: Map<number, number>;
  try {
    real = Y.decodeStateVector(Y.encodeStateVectorFromUpdate(snapshotUpdate));
  } catch {
    return false;
  }
  if (real.size !== claimed.size) return false;
  for (const [client, clock] of real) if (claimed.get(client) !== clock) return false;
  return true;
}
