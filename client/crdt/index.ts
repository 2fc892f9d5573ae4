/** The CRDT core of Roost's shared state: transport-agnostic documents, typed views, presence and wire codec. */
export { AddWinsSet } from './add-wins-set.js';
export { Awareness, createAwareness, type AwarenessChange, type AwarenessOptions } from './awareness.js';
export { Counter, CounterMap } from './counter.js';
export { createCoverageCheck, isSnapshotConsistent } from './coverage.js';
export { CrdtError, type CrdtErrorCode } from './errors.js';
export { isJson, type Json } from './json.js';
export { LwwMap } from './lww-map.js';
export { acceptMembership, isMemberOf, makeMembership, type MembershipRecord } from './membership.js';
export { Register } from './register.js';
export {
  RemoteOrigin,
  SharedDoc,
  createSharedDoc,
  defaultPolicies,
  isRemoteOrigin,
  onlySnapshotsFrom,
  rejectNonMembers,
  type DocSnapshot,
  type SharedDocOptions,
  type UpdatePolicy,
} from './shared-doc.js';
export type { ClockRange, DocTransport, LocalUpdateMeta, RemoteUpdateKind, RemoteUpdateMeta, UpdateReceiver } from './transport.js';
export * from './wire.js';
