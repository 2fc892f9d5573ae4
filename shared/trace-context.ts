/**
 * W3C Trace Context carried by a public Nostr event: one `["traceparent", "00-<trace id>-<span id>-<flags>"]`
 * tag (docs/protocol.md, docs/observability.md). Pure: both the relay and the client parse it here. A
 * private event (DM, gift wrap) never carries one on its outside; its context travels in the encrypted rumor.
 */

/** Name of the tag that carries a W3C `traceparent` value. */
export const TRACEPARENT_TAG = 'traceparent';

/** A parsed W3C trace parent: the sender's trace and the span the receiver's spans become children of. */
export interface TraceParent {
  /** 32 lowercase hex characters, not all zero. */
  traceId: string;
  /** 16 lowercase hex characters, not all zero. */
  spanId: string;
  /** The sampled flag (bit 0 of trace-flags). */
  sampled: boolean;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

/**
 * Parses a `traceparent` header value (W3C Trace Context level 1). Untrusted input: anything else,
 * version `ff`, or an all-zero id gives undefined. A future version is read by its first four fields only.
 */
export function parseTraceparent(value: string): TraceParent | undefined {
  if (value.length < 55 || value.length > 256) return undefined;
  const m = TRACEPARENT.exec(value.length === 55 ? value : value.slice(0, 55));
  if (!m) return undefined;
  const [, version, traceId, spanId, flags] = m as unknown as [string, string, string, string, string];
  if (version === 'ff') return undefined;
  if (version === '00' && value.length !== 55) return undefined;
  if (version !== '00' && value.length > 55 && value[55] !== '-') return undefined;
  if (traceId === ZERO_TRACE || spanId === ZERO_SPAN) return undefined;
  return { traceId, spanId, sampled: (Number.parseInt(flags, 16) & 1) === 1 };
}

/** Formats a trace parent as a version-00 `traceparent` value. */
export function formatTraceparent(parent: TraceParent): string {
  return `00-${parent.traceId}-${parent.spanId}-${parent.sampled ? '01' : '00'}`;
}

/** Builds the event tag carrying a trace parent. */
export function makeTraceparentTag(parent: TraceParent): [string, string] {
  return [TRACEPARENT_TAG, formatTraceparent(parent)];
}

/** The trace parent in an event's tags: the first `traceparent` tag, if it parses; otherwise undefined. */
export function getTraceparent(tags: readonly (readonly string[])[]): TraceParent | undefined {
  for (const tag of tags) {
    if (tag[0] === TRACEPARENT_TAG && typeof tag[1] === 'string') return parseTraceparent(tag[1]);
  }
  return undefined;
}
