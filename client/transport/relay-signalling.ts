import type { NostrEvent } from '../../shared/event.js';
import type { Filter } from '../../shared/filter.js';
import { DirectError } from './errors.js';
import { SeenSet } from './reliable.js';
import { DIRECT_SIGNAL_KIND, SignalCodec, type DirectIdentity, type ReceivedSignal } from './signal.js';
import type { DirectLogger, DirectSignalling } from './webrtc.js';

/**
 * What signalling needs of a relay connection. The agent client's `RelayLink` is adapted in two
 * lines: `publish: (e) => link.publish(e)`, and `subscribe` over `link.subscribe(id, { filters, onEvent })`.
 */
export interface SignalRelay {
  /** Publishes a signed event; a rejected promise counts as not delivered. */
  publish(event: NostrEvent): unknown;
  /** Subscribes to live events matching `filter` (re-sent after reconnects); returns an unsubscribe function. */
  subscribe(filter: Filter, onEvent: (event: NostrEvent) => void): () => void;
}

/** The filter for the signals addressed to `pubkey` (live only: they are ephemeral). */
export function getSignalFilter(pubkey: string): Filter {
  return { kinds: [DIRECT_SIGNAL_KIND], '#p': [pubkey], limit: 0 };
}

/**
 * {@link DirectSignalling} over relays: payloads are sealed into signed, NIP-44 encrypted
 * kind-25050 events published to every relay; incoming ones are checked (signature, recipient,
 * age), opened, deduplicated by event id (the same signal comes from each relay, and a replay
 * within the age window is dropped) and handed over with their proven sender.
 */
export function createRelaySignalling(
  identity: DirectIdentity,
  relays: readonly SignalRelay[],
  opts: { now?: () => number; log?: DirectLogger } = {},
): DirectSignalling & { close(): void } {
  const codec = new SignalCodec(identity);
  const now = opts.now ?? Date.now;
  const seen = new SeenSet(4096);
  const handlers = new Set<(s: ReceivedSignal) => void>();
  const onEvent = (event: NostrEvent) => {
    if (!seen.markSeen(event.id)) return;
    let signal: ReceivedSignal;
    try {
      signal = codec.open(event, Math.floor(now() / 1000));
    } catch (err) {
      opts.log?.debug({ eventId: event.id, err: String(err) }, 'signal dropped');
      return;
    }
    for (const h of [...handlers]) h(signal);
  };
  const offs = relays.map((r) => r.subscribe(getSignalFilter(identity.pubkey), onEvent));
  return {
    async send(peer, payload) {
      const event = codec.seal(peer, payload, Math.floor(now() / 1000));
      const results = await Promise.allSettled(relays.map(async (r) => r.publish(event)));
      if (results.every((r) => r.status === 'rejected')) {
        throw new DirectError('ROOST_ERR_DIRECT_SIGNAL', 'no relay took the signal', { peer, session: payload.session });
      }
    },
    onSignal(handler) {
      handlers.add(handler);
      return () => handlers.delete(handler);
    },
    close() {
      handlers.clear();
      for (const off of offs) off();
    },
  };
}
