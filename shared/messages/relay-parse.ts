import type { NostrEvent } from '../event.js';
import { isEventShape } from '../event-shape.js';
import type { RelayMessage } from './relay.js';

/*
 * The edge for frames a relay sends: every frame from a relay is checked here, once, and handlers take
 * typed values — the client's links and the relay's replicator (relay/replication/) alike. Hand-written
 * rather than zod so the client's browser bundle stays small; the event check is shared/event-shape.ts,
 * as the relay's inbound edge (a signature check follows for every event).
 */

/**
 * What the replicator reads besides {@link RelayMessage}: NIP-77 answers, the origin chain of a
 * replicated event (`via`, unchecked strings: the reader keeps the 64-hex ones), and an EVENT frame
 * whose event is malformed (the replicator counts it and moves past its sequence number).
 */
export type RelayFrame =
  | Exclude<RelayMessage, { type: 'EVENT' }>
  | { type: 'EVENT'; subId: string; event: NostrEvent; seq?: number; via?: unknown[] }
  | { type: 'EVENT-MALFORMED'; subId: string; seq?: number }
  | { type: 'NEG-MSG'; subId: string; message: string }
  | { type: 'NEG-ERR'; subId: string; reason: string };

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Parses one relay → client frame, NIP-77 and Roost's replication extensions included; undefined when malformed or unknown. */
export function parseRelayFrame(text: string): RelayFrame | undefined {
  let f: unknown;
  try {
    f = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!Array.isArray(f) || typeof f[0] !== 'string') return undefined;
  switch (f[0]) {
    case 'EVENT': {
      if (typeof f[1] !== 'string') return undefined;
      const meta = f[3] as { seq?: unknown; via?: unknown } | undefined;
      const seq = meta && typeof meta === 'object' && isInt(meta.seq) ? meta.seq : undefined;
      if (!isEventShape(f[2])) return seq === undefined ? { type: 'EVENT-MALFORMED', subId: f[1] } : { type: 'EVENT-MALFORMED', subId: f[1], seq };
      const event = f[2];
      const clean: NostrEvent = {
        id: event.id,
        pubkey: event.pubkey,
        created_at: event.created_at,
        kind: event.kind,
        tags: event.tags,
        content: event.content,
        sig: event.sig,
      };
      if (seq === undefined) return { type: 'EVENT', subId: f[1], event: clean };
      return Array.isArray(meta!.via) ? { type: 'EVENT', subId: f[1], event: clean, seq, via: meta!.via } : { type: 'EVENT', subId: f[1], event: clean, seq };
    }
    case 'OK':
      if (typeof f[1] !== 'string' || typeof f[2] !== 'boolean') return undefined;
      return { type: 'OK', eventId: f[1], accepted: f[2], reason: typeof f[3] === 'string' ? f[3] : '' };
    case 'EOSE': {
      if (typeof f[1] !== 'string') return undefined;
      const meta = f[2] as { cursor?: unknown; more?: unknown } | undefined;
      if (meta && typeof meta === 'object' && isInt(meta.cursor)) {
        return { type: 'EOSE', subId: f[1], cursor: meta.cursor, more: meta.more === true };
      }
      return { type: 'EOSE', subId: f[1] };
    }
    case 'CLOSED':
      if (typeof f[1] !== 'string') return undefined;
      return { type: 'CLOSED', subId: f[1], reason: typeof f[2] === 'string' ? f[2] : '' };
    case 'NOTICE':
      return typeof f[1] === 'string' ? { type: 'NOTICE', message: f[1] } : undefined;
    case 'AUTH':
      return typeof f[1] === 'string' ? { type: 'AUTH', challenge: f[1] } : undefined;
    case 'COUNT': {
      const c = f[2] as { count?: unknown } | undefined;
      if (typeof f[1] !== 'string' || !c || !isInt(c.count)) return undefined;
      return { type: 'COUNT', subId: f[1], count: c.count };
    }
    case 'NEG-MSG':
      return typeof f[1] === 'string' && typeof f[2] === 'string' ? { type: 'NEG-MSG', subId: f[1], message: f[2] } : undefined;
    case 'NEG-ERR':
      return typeof f[1] === 'string' ? { type: 'NEG-ERR', subId: f[1], reason: typeof f[2] === 'string' ? f[2] : '' } : undefined;
    default:
      return undefined;
  }
}

/** Parses one relay → client frame (NIP-01, NIP-42, NIP-45, the sequence extension); undefined when it is malformed or unknown. */
export function parseRelayMessage(text: string): RelayMessage | undefined {
  const f = parseRelayFrame(text);
  if (!f || f.type === 'EVENT-MALFORMED' || f.type === 'NEG-MSG' || f.type === 'NEG-ERR') return undefined;
  if (f.type === 'EVENT' && f.via) return { type: 'EVENT', subId: f.subId, event: f.event, seq: f.seq };
  return f;
}
