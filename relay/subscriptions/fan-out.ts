import type { NostrEvent } from '../../shared/event.js';
import { makeEventFrame } from '../../shared/messages/relay.js';
import type { Subscription } from '../connection.js';
import { canRead } from '../policies/private-inbox.js';
import { isInOriginChain } from '../replication/origins.js';
import type { OnDelivered, RelayStats } from '../context.js';
import type { SubscriptionIndex } from './index.js';

/**
 * Builds the live delivery function: indexed candidate lookup, confirmed by the shared matcher,
 * guarded by each subscription's sequence watermark so a stored event already answered from
 * storage is never sent twice.
 */
export function createFanOut(
  index: SubscriptionIndex<Subscription>,
  privateKinds: ReadonlySet<number>,
  stats: RelayStats,
  maxHeldBytes: number,
  onDelivered: readonly OnDelivered[] = [],
  /**
   * The origin chain of a stored event (the relays it was replicated through), or undefined; consulted only
   * while `hasOrigins()` (this relay has replicated something). The event is not sent to a connection
   * authenticated as a relay of the chain, and goes to sequence-mode readers with it (`via`).
   */
  originOf?: (seq: number) => string | undefined,
  hasOrigins: () => boolean = () => originOf !== undefined,
) {
  // Subscriptions sharing an id get the same frame: it is encoded once per event, not per socket.
  const frames = new Map<string, Buffer>();
  const frameFor = (sub: Subscription, raw: string, seq: number | undefined, chain: string | undefined): Buffer => {
    const key = sub.seqMode && seq !== undefined ? sub.subIdJson + ' seq' : sub.subIdJson;
    let frame = frames.get(key);
    if (frame === undefined) {
      frame = Buffer.from(makeEventFrame(sub.subIdJson, raw, sub.seqMode ? seq : undefined, chain));
      frames.set(key, frame);
    }
    return frame;
  };
  return function fanOut(event: NostrEvent, raw: string, seq: number | undefined): void {
    const isPrivate = privateKinds.has(event.kind);
    frames.clear();
    // One lookup per event, only on a relay that replicates.
    const chain = seq !== undefined && originOf !== undefined && hasOrigins() ? originOf(seq) : undefined;
    index.match(event, (sub) => {
      if (seq !== undefined && seq <= sub.liveFrom) return;
      if (isPrivate && !sub.conn.readsPrivate && !canRead(event, sub.conn.authed, privateKinds)) return;
      if (isInOriginChain(chain, sub.conn.peerRelay)) return;
      const frame = frameFor(sub, raw, seq, chain);
      if (sub.held) holdFrame(sub, frame, maxHeldBytes);
      else if (sub.conn.send(frame)) stats.deliveries++;
      else return;
      // Held frames count as delivered: they follow EOSE unless the reader is cut off.
      if (seq !== undefined) for (const hook of onDelivered) hook(sub.conn, seq, raw);
    });
  };
}

/** Queues a live frame behind stored results still being written; a reader too slow to drain is cut off. */
function holdFrame(sub: Subscription, frame: Buffer, maxHeldBytes: number): void {
  const held = sub.held!;
  held.frames.push(frame);
  held.bytes += frame.length;
  if (held.bytes > maxHeldBytes) sub.conn.cutOff('live events piled up behind a slow stored answer');
}
