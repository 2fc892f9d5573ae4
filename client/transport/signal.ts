import * as nip44 from 'nostr-tools/nip44';
import { verifyEvent } from 'nostr-tools/pure';
import { z } from 'zod';
import type { EventTemplate, NostrEvent } from '../../shared/event.js';
import { getTagValue } from '../../shared/event.js';
import { DirectError } from './errors.js';
import { getBareEvent } from '../../shared/event-shape.js';

/**
 * Direct-link signalling over a relay: SDP offers and answers and trickled ICE candidates travel
 * as ephemeral events (never stored), signed by the sender and NIP-44 v2 encrypted to the peer,
 * who is named in a `p` tag. The relay sees who signals whom, never what.
 */

/** Ephemeral kind of a signalling event. */
export const DIRECT_SIGNAL_KIND = 25050;

/** Version of the signalling payloads in this module. */
export const DIRECT_SIGNAL_VERSION = 1;

/** How old (seconds) a signalling event may be before it is refused as stale or replayed. */
export const DIRECT_SIGNAL_MAX_AGE = 120;

/** What the signalling code needs of an agent's identity (the client's `Identity` fits). */
export interface DirectIdentity {
  readonly pubkey: string;
  sign(template: EventTemplate): NostrEvent;
  /** A copy of the secret key, for NIP-44 (zeroed after use). */
  exportSecretKey(): Uint8Array;
}

const HEX64 = /^[0-9a-f]{64}$/;
const session = z.string().regex(/^[0-9a-f]{32}$/);
const fingerprint = z.string().min(10).max(200);
const sdp = z.string().min(10).max(32_768);

/** Offer and answer carry the sender's DTLS fingerprint beside the SDP (the identity binding). */
const offerSchema = z.object({ v: z.literal(1), type: z.literal('offer'), session, sdp, fingerprint });
const answerSchema = z.object({ v: z.literal(1), type: z.literal('answer'), session, sdp, fingerprint });
const candidateSchema = z.object({
  v: z.literal(1),
  type: z.literal('candidate'),
  session,
  candidate: z.string().max(1024),
  sdpMid: z.string().max(64).nullable(),
  sdpMLineIndex: z.number().int().min(0).max(64).nullable(),
});
/** `code` is the sender's DirectErrorCode: ROOST_ERR_DIRECT_FAILED during setup invites a fresh attempt. */
const byeSchema = z.object({ v: z.literal(1), type: z.literal('bye'), session, reason: z.string().max(200), code: z.string().max(64).optional() });

/** Every signalling payload, validated once at the edge. */
export const signalPayloadSchema = z.discriminatedUnion('type', [offerSchema, answerSchema, candidateSchema, byeSchema]);

/** A signalling payload (the decrypted content of a kind-25050 event). */
export type SignalPayload = z.infer<typeof signalPayloadSchema>;

/** A signalling payload whose sender is proven by the event's signature. */
export interface ReceivedSignal {
  from: string;
  payload: SignalPayload;
  /** Id of the signalling event (for replay checks). */
  eventId: string;
  createdAt: number;
}

/**
 * Seals and opens signalling events for one identity, caching a NIP-44 conversation key per peer.
 * Construction copies the secret key once; it is held in a private field.
 */
export class SignalCodec {
  readonly pubkey: string;
  readonly #identity: DirectIdentity;
  readonly #keys = new Map<string, Uint8Array>();

  constructor(identity: DirectIdentity) {
    this.#identity = identity;
    this.pubkey = identity.pubkey;
  }

  /** A signed kind-25050 event carrying `payload` encrypted to `peer`. */
  seal(peer: string, payload: SignalPayload, nowSeconds: number): NostrEvent {
    const content = nip44.encrypt(JSON.stringify(payload), this.#key(peer));
    return this.#identity.sign({ kind: DIRECT_SIGNAL_KIND, created_at: nowSeconds, tags: [['p', peer]], content });
  }

  /**
   * Checks and opens a signalling event addressed to this identity: kind, recipient, age,
   * signature, decryption and payload shape. Throws ROOST_ERR_DIRECT_SIGNAL on any failure.
   */
  open(event: NostrEvent, nowSeconds: number, maxAge = DIRECT_SIGNAL_MAX_AGE): ReceivedSignal {
    const fail = (why: string, cause?: unknown): never => {
      throw new DirectError('ROOST_ERR_DIRECT_SIGNAL', `signalling event refused: ${why}`, { peer: event.pubkey }, { cause });
    };
    if (event.kind !== DIRECT_SIGNAL_KIND) fail('wrong kind');
    if (getTagValue(event, 'p') !== this.pubkey) fail('not addressed to us');
    if (!HEX64.test(event.pubkey) || event.pubkey === this.pubkey) fail('bad sender');
    if (Math.abs(nowSeconds - event.created_at) > maxAge) fail('stale');
    if (!verifyEvent(getBareEvent(event))) fail('bad signature');
    let json: unknown;
    try {
      json = JSON.parse(nip44.decrypt(event.content, this.#key(event.pubkey)));
    } catch (err) {
      fail('cannot decrypt', err);
    }
    const parsed = signalPayloadSchema.safeParse(json);
    if (!parsed.success) fail('malformed payload');
    return { from: event.pubkey, payload: parsed.data!, eventId: event.id, createdAt: event.created_at };
  }

  #key(peer: string): Uint8Array {
    let k = this.#keys.get(peer);
    if (!k) {
      const sk = this.#identity.exportSecretKey();
      try {
        k = nip44.getConversationKey(sk, peer);
      } finally {
        sk.fill(0);
      }
      if (this.#keys.size >= 256) this.#keys.delete(this.#keys.keys().next().value!);
      this.#keys.set(peer, k);
    }
    return k;
  }
}
