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
  onDelivered: readonly OnDelivered[] = [],
) {
  return function fanOut(event: NostrEvent, raw: string, seq: number | undefined): void {
    const isPrivate = privateKinds.has(event.kind);
    index.match(event, (sub) => {
      if (seq !== undefined && seq <= sub.liveFrom) return;
      if (isPrivate && !canRead(event, sub.conn.authed, privateKinds)) return;
      if (!sub.conn.send(makeEventFrame(sub.subIdJson, raw, sub.seqMode ? seq : undefined))) return;
      stats.deliveries++;
      if (seq !== undefined) for (const hook of onDelivered) hook(sub.conn, seq, raw);
    });
  };
}
