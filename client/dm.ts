import { createRumor, createSeal, createWrap, unwrapEvent } from 'nostr-tools/nip59';
import { getEventHash } from 'nostr-tools/pure';
import type { NostrEvent } from '../shared/event.js';
import { Kind } from '../shared/kinds.js';
import { ClientError } from './errors.js';
import type { Identity } from './identity.js';

/**
 * Direct messages, NIP-17 style: a kind-14 rumor (unsigned) sealed (kind 13, NIP-44 v2, signed by
 * the sender) inside a gift wrap (kind 1059, NIP-44 v2 from a throwaway key, created_at blurred
 * over two days). The relay sees only the recipient's pubkey in a `p` tag; sender, content, time
 * and tags are inside.
 */

/** An unsigned inner event: its author is proven by the seal's signature. */
export interface Rumor {
  id: string;
  pubkey: string;
  created_at: number;
  kind: number;
  tags: string[][];
  content: string;
}

/** Tag naming a request's correlation id. */
export const REQUEST_TAG = 'roost-req';

/** Tag naming the request a response answers. */
export const RESPONSE_TAG = 'roost-res';

/** Gift-wraps a chat message from `sender` to `recipient`; returns the wrap to publish and the rumor inside. */
export function wrapDirectMessage(
  sender: Identity,
  recipient: string,
  content: string,
  opts: { tags?: string[][]; createdAt?: number } = {},
): { wrap: NostrEvent; rumor: Rumor } {
  const sk = sender.exportSecretKey();
  const rumor = createRumor(
    {
      kind: Kind.PrivateDirectMessage,
      content,
      tags: [['p', recipient], ...(opts.tags ?? [])],
      created_at: opts.createdAt ?? Math.floor(Date.now() / 1000),
    },
    sk,
  ) as Rumor;
  const seal = createSeal(rumor, sk, recipient);
  sk.fill(0);
  return { wrap: createWrap(seal, recipient) as NostrEvent, rumor };
}

/** Opens a gift wrap addressed to `me`: the rumor, whose pubkey the seal's signature vouches for. */
export function unwrapDirectMessage(me: Identity, wrap: NostrEvent): Rumor {
  if (wrap.kind !== Kind.GiftWrap) throw new ClientError('ROOST_ERR_DECRYPT', 'not a gift wrap');
  const sk = me.exportSecretKey();
  try {
    const rumor = unwrapEvent(wrap, sk) as Rumor;
    if (!rumor || typeof rumor.content !== 'string' || !Array.isArray(rumor.tags) || typeof rumor.kind !== 'number') {
      throw new Error('malformed rumor');
    }
    if (getEventHash(rumor) !== rumor.id) throw new Error('rumor id does not match its content');
    return rumor;
  } catch (err) {
    throw new ClientError('ROOST_ERR_DECRYPT', 'cannot open this gift wrap (not for us, or malformed)', { eventId: wrap.id }, { cause: err });
  } finally {
    sk.fill(0);
  }
}
