import { finalizeEvent, generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import type { NostrEvent } from '../../shared/event.js';

/** A test identity. */
export interface Key {
  sk: Uint8Array;
  pk: string;
}

/** A fresh keypair. */
export function makeKey(): Key {
  const sk = generateSecretKey();
  return { sk, pk: getPublicKey(sk) };
}

/** Signs an event with sensible defaults (kind 1, now, no tags). */
export function signEvent(key: Key, t: Partial<Pick<NostrEvent, 'kind' | 'tags' | 'content' | 'created_at'>> = {}): NostrEvent {
  return finalizeEvent(
    {
      kind: t.kind ?? 1,
      tags: t.tags ?? [],
      content: t.content ?? '',
      created_at: t.created_at ?? Math.floor(Date.now() / 1000),
    },
    key.sk,
  ) as NostrEvent;
}

/** Seconds since the epoch. */
export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
