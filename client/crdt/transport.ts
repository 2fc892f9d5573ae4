/**
 * The only thing the CRDT core knows about the network: a transport takes the binary deltas a document
 * produces and feeds back the deltas others produced. Relay links, WebRTC channels and the in-memory test
 * connector all implement this; the core imports none of them.
 */

import type { ClockRange } from '../../shared/crdt-events.js';

/** Clock range `[from, to)` of the structs one replica (Yjs client id) created in a delta (defined in shared/). */
export type { ClockRange };

/** What the core tells a transport about a local delta (the transport signs and sends it). */
export interface LocalUpdateMeta {
  /** Opaque document id (for Nostr: the membership record's address, see wire.ts). */
  docId: string;
  /** Pubkey the transport must sign with (the document's `self`). */
  author: string;
  /** Structs this delta created; every delta the core publishes creates at least one (see docs/crdt.md). */
  clock: ClockRange;
}

/** How a remote update reached us; `snapshot` and `sync` carry other replicas' structs transitively. */
export type RemoteUpdateKind = 'delta' | 'snapshot' | 'sync';

/** What a transport tells the core about a remote update. `author` is the verified signer. */
export interface RemoteUpdateMeta {
  author: string;
  kind?: RemoteUpdateKind;
  /** Transport-level id (e.g. the Nostr event id), for diagnostics only. */
  id?: string;
}

/** Receives remote updates; returns whether the update was accepted. */
export type UpdateReceiver = (update: Uint8Array, meta: RemoteUpdateMeta) => boolean;

/** A pluggable network edge for one shared document. */
export interface DocTransport {
  /** Send a local delta to peers. Must not throw; queue or drop and report on its own. */
  publish(update: Uint8Array, meta: LocalUpdateMeta): void;
  /** Optional: start feeding remote updates into `receive`; returns a function that stops it. */
  attach?(receive: UpdateReceiver): () => void;
}
