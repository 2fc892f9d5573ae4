import type { NostrEvent } from '../shared/event.js';
import { isEventShape } from '../shared/event-shape.js';
import type { RelayMessage } from '../shared/messages/relay.js';

/*
 * The client's edge: every frame from a relay is checked here, once, and handlers take typed
 * values. Hand-written rather than zod so the browser bundle stays small; the event check is
 * shared/event-shape.ts, as the relay's (a signature check follows for every event).
 */

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Parses one relay → client frame; undefined when it is malformed or unknown. */
export function parseRelayMessage(text: string): RelayMessage | undefined {
  let f: unknown;
  try {
    f = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!Array.isArray(f) || typeof f[0] !== 'string') return undefined;
  switch (f[0]) {
    case 'EVENT': {
      if (typeof f[1] !== 'string' || !isEventShape(f[2])) return undefined;
      const meta = f[3] as { seq?: unknown } | undefined;
      const seq = meta && typeof meta === 'object' && isInt(meta.seq) ? meta.seq : undefined;
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
      return seq === undefined ? { type: 'EVENT', subId: f[1], event: clean } : { type: 'EVENT', subId: f[1], event: clean, seq };
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
    default:
      return undefined;
  }
}
