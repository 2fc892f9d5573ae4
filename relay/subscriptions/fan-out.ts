import type { NostrEvent } from '../../shared/event.js';
import { makeEventFrame } from '../../shared/messages/relay.js';
import type { Subscription } from '../connection.js';
import { canRead } from '../policies/private-inbox.js';
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
  /** The relay a stored event was replicated from: it is not sent back to a connection authenticated as that relay. */
  originOf?: (seq: number) => string | undefined,
) {
  // Subscriptions sharing an id get the same frame: it is encoded once per event, not per socket.
  const frames = new Map<string, Buffer>();
  const frameFor = (sub: Subscription, raw: string, seq: number | undefined): Buffer => {
    const key = sub.seqMode && seq !== undefined ? sub.subIdJson + ' seq' : sub.subIdJson;
    let frame = frames.get(key);
    if (frame === undefined) {
      frame = Buffer.from(makeEventFrame(sub.subIdJson, raw, sub.seqMode ? seq : undefined));
      frames.set(key, frame);
    }
    return frame;
  };
  return function fanOut(event: NostrEvent, raw: string, seq: number | undefined): void {
    const isPrivate = privateKinds.has(event.kind);
    frames.clear();
    index.match(event, (sub) => {
      if (seq !== undefined && seq <= sub.liveFrom) return;
      if (isPrivate && !sub.conn.readsPrivate && !canRead(event, sub.conn.authed, privateKinds)) return;
      if (seq !== undefined && sub.conn.peerRelay !== undefined && originOf?.(seq) === sub.conn.peerRelay) return;
      const frame = frameFor(sub, raw, seq);
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
