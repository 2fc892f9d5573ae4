import type { z } from 'zod';
import type { NostrEvent } from '../event.js';
import type { Filter } from '../filter.js';
import { eventSchema, filterSchema, subIdSchema } from './schema.js';

/** A client → relay message after validation. */
export type ClientMessage =
  | { type: 'EVENT'; event: NostrEvent }
  | { type: 'REQ'; subId: string; filters: Filter[] }
  | { type: 'CLOSE'; subId: string }
  | { type: 'AUTH'; event: NostrEvent }
  | { type: 'COUNT'; subId: string; filters: Filter[] };

/**
 * Why a frame was refused, and where the answer goes: an `OK` for an event whose id could be
 * read, a `CLOSED` for a subscription whose id could be read, else a `NOTICE`.
 */
export type ClientMessageError =
  | { reply: 'OK'; eventId: string; reason: string }
  | { reply: 'CLOSED'; subId: string; reason: string }
  | { reply: 'COUNT_CLOSED'; subId: string; reason: string }
  | { reply: 'NOTICE'; reason: string };

/** Result of {@link parseClientMessage}. */
export type ParseResult = { ok: true; message: ClientMessage } | { ok: false; error: ClientMessageError };

function describe(err: z.ZodError): string {
  const issue = err.issues[0];
  if (!issue) return 'malformed message';
  const path = issue.path.length ? issue.path.join('.') + ': ' : '';
  return `${path}${issue.message}`;
}

function fail(error: ClientMessageError): ParseResult {
  return { ok: false, error };
}

function probeEventId(v: unknown): string | undefined {
  if (v && typeof v === 'object' && 'id' in v) {
    const id = (v as { id: unknown }).id;
    if (typeof id === 'string' && /^[0-9a-f]{64}$/.test(id)) return id;
  }
  return undefined;
}

function parseFilters(frame: unknown[], subId: string, closeAs: 'CLOSED' | 'COUNT_CLOSED'): ParseResult | Filter[] {
  const filters: Filter[] = [];
  for (let i = 2; i < frame.length; i++) {
    const r = filterSchema.safeParse(frame[i]);
    if (!r.success) return fail({ reply: closeAs, subId, reason: `invalid: filter ${i - 2}: ${describe(r.error)}` });
    filters.push(r.data as Filter);
  }
  if (filters.length === 0) return fail({ reply: closeAs, subId, reason: 'invalid: at least one filter is required' });
  return filters;
}

/** Validates one inbound text frame, once, at the edge. Reasons carry NIP-01 prefixes. */
export function parseClientMessage(text: string): ParseResult {
  let frame: unknown;
  try {
    frame = JSON.parse(text);
  } catch {
    return fail({ reply: 'NOTICE', reason: 'invalid: malformed JSON' });
  }
  if (!Array.isArray(frame) || typeof frame[0] !== 'string') {
    return fail({ reply: 'NOTICE', reason: 'invalid: a message must be a JSON array starting with a string' });
  }
  const verb = frame[0];
  switch (verb) {
    case 'EVENT':
    case 'AUTH': {
      if (frame.length !== 2) {
        const id = probeEventId(frame[1]);
        const reason = `invalid: ${verb} takes exactly one event`;
        return fail(id ? { reply: 'OK', eventId: id, reason } : { reply: 'NOTICE', reason });
      }
      const r = eventSchema.safeParse(frame[1]);
      if (!r.success) {
        const id = probeEventId(frame[1]);
        const reason = `invalid: ${describe(r.error)}`;
        return fail(id ? { reply: 'OK', eventId: id, reason } : { reply: 'NOTICE', reason: `${reason} (${verb})` });
      }
      return { ok: true, message: { type: verb, event: r.data } };
    }
    case 'REQ':
    case 'COUNT': {
      const s = subIdSchema.safeParse(frame[1]);
      if (!s.success) return fail({ reply: 'NOTICE', reason: `invalid: ${verb}: ${describe(s.error)}` });
      const filters = parseFilters(frame, s.data, verb === 'REQ' ? 'CLOSED' : 'COUNT_CLOSED');
      if (!Array.isArray(filters)) return filters;
      return { ok: true, message: { type: verb, subId: s.data, filters } };
    }
    case 'CLOSE': {
      const s = subIdSchema.safeParse(frame[1]);
      if (!s.success || frame.length !== 2) {
        return fail({ reply: 'NOTICE', reason: `invalid: CLOSE takes one subscription id` });
      }
      return { ok: true, message: { type: 'CLOSE', subId: s.data } };
    }
    default:
      return fail({ reply: 'NOTICE', reason: `invalid: unknown message type ${JSON.stringify(verb.slice(0, 20))}` });
  }
}
