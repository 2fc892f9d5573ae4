import type { z } from 'zod';
import type { NostrEvent } from '../event.js';
import type { Filter } from '../filter.js';
import { eventSchema, filterSchema, negMessageSchema, subIdSchema } from './schema.js';

/** A client → relay message after validation. */
export type ClientMessage =
  | { type: 'EVENT'; event: NostrEvent }
  | { type: 'REQ'; subId: string; filters: Filter[] }
  | { type: 'CLOSE'; subId: string }
  | { type: 'AUTH'; event: NostrEvent }
  | { type: 'COUNT'; subId: string; filters: Filter[] }
  | { type: 'NEG-OPEN'; subId: string; filter: Filter; message: string }
  | { type: 'NEG-MSG'; subId: string; message: string }
  | { type: 'NEG-CLOSE'; subId: string };

/**
 * Why a frame was refused, and where the answer goes: an `OK` for an event whose id could be
 * read, a `CLOSED` for a subscription whose id could be read, else a `NOTICE`.
 */
export type ClientMessageError =
  | { reply: 'OK'; eventId: string; reason: string }
  | { reply: 'CLOSED'; subId: string; reason: string }
  | { reply: 'COUNT_CLOSED'; subId: string; reason: string }
  | { reply: 'NEG-ERR'; subId: string; reason: string }
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
    case 'NEG-OPEN':
    case 'NEG-MSG':
    case 'NEG-CLOSE':
      return parseNegentropyMessage(verb, frame);
    default:
      return fail({ reply: 'NOTICE', reason: `invalid: unknown message type ${JSON.stringify(verb.slice(0, 20))}` });
  }
}

/** NIP-77: `["NEG-OPEN", id, filter, hex]`, `["NEG-MSG", id, hex]`, `["NEG-CLOSE", id]`. The hex is decoded by the handler. */
function parseNegentropyMessage(verb: 'NEG-OPEN' | 'NEG-MSG' | 'NEG-CLOSE', frame: unknown[]): ParseResult {
  const s = subIdSchema.safeParse(frame[1]);
  if (!s.success) return fail({ reply: 'NOTICE', reason: `invalid: ${verb}: ${describe(s.error)}` });
  const subId = s.data;
  const arity = verb === 'NEG-OPEN' ? 4 : verb === 'NEG-MSG' ? 3 : 2;
  if (frame.length !== arity) return fail({ reply: 'NEG-ERR', subId, reason: `invalid: ${verb} takes ${arity - 1} arguments` });
  if (verb === 'NEG-CLOSE') return { ok: true, message: { type: verb, subId } };
  const m = negMessageSchema.safeParse(frame[arity - 1]);
  if (!m.success) return fail({ reply: 'NEG-ERR', subId, reason: `invalid: ${describe(m.error)}` });
  if (verb === 'NEG-MSG') return { ok: true, message: { type: verb, subId, message: m.data } };
  const f = filterSchema.safeParse(frame[2]);
  if (!f.success) return fail({ reply: 'NEG-ERR', subId, reason: `invalid: filter: ${describe(f.error)}` });
  const filter = f.data as Filter;
  if (filter.seq_after !== undefined || filter.seq_until !== undefined) {
    return fail({ reply: 'NEG-ERR', subId, reason: 'invalid: NEG-OPEN does not take sequence ranges' });
  }
  return { ok: true, message: { type: verb, subId, filter, message: m.data } };
}
