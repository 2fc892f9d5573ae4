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
