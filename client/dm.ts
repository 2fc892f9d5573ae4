import * as nip44 from 'nostr-tools/nip44';
import { generateSecretKey, getEventHash } from 'nostr-tools/pure';
import type { NostrEvent } from '../shared/event.js';
import { Kind } from '../shared/kinds.js';
import { ClientError } from './errors.js';
import type { Identity } from './identity.js';

/**
 * Direct messages, NIP-17 style: a kind-14 rumor (unsigned) sealed (kind 13, NIP-44 v2, signed by
 * the sender) inside a gift wrap (kind 1059, NIP-44 v2 from a throwaway key, created_at blurred
 * over two days). The relay sees only the recipient's pubkey in a `p` tag; sender, content, time
 * and tags are inside. Same construction as nostr-tools' nip59, over the identity's crypto backend
 * (WebAssembly in Node), and with the rumor id checked on the way in.
 */

/** An unsigned inner event: its author is proven by the seal's signature. */
export type Rumor = Omit<NostrEvent, 'sig'>;

/** Tag naming a request's correlation id. */
export const REQUEST_TAG = 'roost-req';

/** Tag naming the request a response answers. */
export const RESPONSE_TAG = 'roost-res';

const TWO_DAYS = 2 * 24 * 60 * 60;

/** A timestamp up to two days before `now`, so the wrap's time says little about when it was sent. */
function blurred(now: number): number {
  const r = globalThis.crypto.getRandomValues(new Uint32Array(1))[0]!;
  return now - (r % TWO_DAYS);
}

/** Gift-wraps a chat message from `sender` to `recipient`; returns the wrap to publish and the rumor inside. */
export function wrapDirectMessage(
  sender: Identity,
  recipient: string,
  content: string,
  opts: { tags?: string[][]; createdAt?: number } = {},
): { wrap: NostrEvent; rumor: Rumor } {
  const rumor = makeRumor(sender, recipient, content, opts);
  return { wrap: wrapRumor(sender, recipient, rumor), rumor };
}

/** The unsigned kind-14 rumor of a chat message (its id is the message id on every path). */
export function makeRumor(sender: Identity, recipient: string, content: string, opts: { tags?: string[][]; createdAt?: number } = {}): Rumor {
  const now = opts.createdAt ?? Math.floor(Date.now() / 1000);
  const unsigned = { pubkey: sender.pubkey, created_at: now, kind: Kind.PrivateDirectMessage, tags: [['p', recipient], ...(opts.tags ?? [])], content };
  return { id: getEventHash(unsigned), ...unsigned };
}

/** Seals (kind 13, signed by the sender) and gift-wraps (kind 1059, throwaway key) an existing rumor. */
export function wrapRumor(sender: Identity, recipient: string, rumor: Rumor): NostrEvent {
  const now = rumor.created_at;
  const seal = sender.sign({
    kind: Kind.Seal,
    created_at: blurred(now),
    tags: [],
    content: nip44.v2.encrypt(JSON.stringify(rumor), sender.conversationKey(recipient)),
  });
  const throwaway = generateSecretKey();
  const crypto = sender.crypto;
  const wrap = crypto.finalize(
    {
      kind: Kind.GiftWrap,
      created_at: blurred(now),
      tags: [['p', recipient]],
      content: nip44.v2.encrypt(JSON.stringify(seal), crypto.conversationKey(throwaway, recipient)),
    },
    throwaway,
  );
  throwaway.fill(0);
  return wrap;
}

/** Parses a rumor carried as JSON (the direct path), checking its shape and id; undefined when invalid. */
export function parseRumor(data: string): Rumor | undefined {
  let v: unknown;
  try {
    v = JSON.parse(data);
  } catch {
    return undefined;
  }
  if (!isRumor(v)) return undefined;
  const { id, ...unsigned } = v;
  return getEventHash(unsigned) === id ? v : undefined;
}

function isRumor(v: unknown): v is Rumor {
  const r = v as Rumor;
  return (
    !!r &&
    typeof r === 'object' &&
    typeof r.id === 'string' &&
    typeof r.pubkey === 'string' &&
    Number.isSafeInteger(r.created_at) &&
    Number.isSafeInteger(r.kind) &&
    typeof r.content === 'string' &&
    Array.isArray(r.tags) &&
    r.tags.every((t) => Array.isArray(t) && t.every((x) => typeof x === 'string'))
  );
}

/** Opens a gift wrap addressed to `me`: the rumor, whose pubkey the seal's signature vouches for. */
export function unwrapDirectMessage(me: Identity, wrap: NostrEvent): Rumor {
  const fail = (why: string, cause?: unknown) =>
    new ClientError('ROOST_ERR_DECRYPT', `cannot open this gift wrap: ${why}`, { eventId: wrap.id }, cause === undefined ? undefined : { cause });
  if (wrap.kind !== Kind.GiftWrap) throw fail('not a gift wrap');
  let seal: NostrEvent;
  let rumor: unknown;
  try {
    seal = JSON.parse(nip44.v2.decrypt(wrap.content, me.conversationKey(wrap.pubkey))) as NostrEvent;
  } catch (err) {
    throw fail('not addressed to this key, or corrupt', err);
  }
  if (!seal || seal.kind !== Kind.Seal || !me.crypto.verify(seal)) throw fail('the seal is not a validly signed kind 13');
  try {
    rumor = JSON.parse(nip44.v2.decrypt(seal.content, me.conversationKey(seal.pubkey)));
  } catch (err) {
    throw fail('the seal does not open', err);
  }
  if (!isRumor(rumor)) throw fail('malformed rumor');
  if (rumor.pubkey !== seal.pubkey) throw fail('the rumor is not by the seal signer');
  if (getEventHash(rumor) !== rumor.id) throw fail('the rumor id does not match its content');
  return rumor;
}
