import { hash } from 'node:crypto';
import { serializeEvent, type NostrEvent } from '../../shared/event.js';
import { makeReason } from '../../shared/reason.js';
import { RECORD_SIZE } from './schnorr-core.js';

const HEX64 = /^[0-9a-f]{64}$/;
const HEX128 = /^[0-9a-f]{128}$/;

/** The reasons a verifier gives; every one carries the NIP-01 `invalid:` prefix. */
export const VERIFY_REASONS = {
  malformed: (what: string) => makeReason('invalid', `malformed event: ${what}`),
  badId: makeReason('invalid', 'event id does not match its content'),
  badSig: makeReason('invalid', 'bad signature'),
} as const;

function isStringArray(v: unknown): v is string[] {
  if (!Array.isArray(v)) return false;
  for (const s of v) if (typeof s !== 'string') return false;
  return true;
}

/**
 * Why `ev` cannot be a canonical NIP-01 event, or undefined when its fields have the canonical shapes
 * (lowercase hex of the right lengths, integer created_at and kind, string tags and content). The id is
 * only meaningful over canonical fields, so this runs even when the edge schema already checked them.
 */
export function getShapeProblem(ev: unknown): string | undefined {
  if (typeof ev !== 'object' || ev === null) return 'not an object';
  const e = ev as Record<string, unknown>;
  if (typeof e.id !== 'string' || !HEX64.test(e.id)) return 'id must be 64 lowercase hex characters';
  if (typeof e.pubkey !== 'string' || !HEX64.test(e.pubkey)) return 'pubkey must be 64 lowercase hex characters';
  if (typeof e.sig !== 'string' || !HEX128.test(e.sig)) return 'sig must be 128 lowercase hex characters';
  if (typeof e.created_at !== 'number' || !Number.isSafeInteger(e.created_at) || e.created_at < 0) return 'created_at must be a non-negative integer';
  if (typeof e.kind !== 'number' || !Number.isInteger(e.kind) || e.kind < 0 || e.kind > 65535) return 'kind must be an integer from 0 to 65535';
  if (typeof e.content !== 'string') return 'content must be a string';
  if (!Array.isArray(e.tags)) return 'tags must be an array';
  for (const t of e.tags) if (!isStringArray(t)) return 'every tag must be an array of strings';
  return undefined;
}

/** True when `ev.id` is the sha256 of its NIP-01 serialisation. */
export function isIdCorrect(ev: NostrEvent): boolean {
  return hash('sha256', serializeEvent(ev), 'hex') === ev.id;
}

/**
 * Checks shape and id, then writes the Schnorr record (id, pubkey, sig) at `records[offset]`.
 * Returns the rejection reason, or undefined when only the signature is left to check.
 * `shapeChecked`: the event is the edge schema's output (`eventSchema`, the same canonical shapes), so
 * the shape is not checked a second time.
 */
export function packEvent(ev: NostrEvent, records: Buffer, offset: number, shapeChecked = false): string | undefined {
  if (!shapeChecked) {
    const problem = getShapeProblem(ev);
    if (problem !== undefined) return VERIFY_REASONS.malformed(problem);
  }
  if (!isIdCorrect(ev)) return VERIFY_REASONS.badId;
  records.write(ev.id, offset, 32, 'hex');
  records.write(ev.pubkey, offset + 32, 32, 'hex');
  records.write(ev.sig, offset + 64, RECORD_SIZE - 64, 'hex');
  return undefined;
}
