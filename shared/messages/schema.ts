import { z } from 'zod';
import { HEX128_PATTERN, HEX64_PATTERN, MAX_EVENT_KIND } from '../event-shape.js';

const hex64 = z.string().regex(HEX64_PATTERN, 'must be 64 lowercase hex characters');
const hex128 = z.string().regex(HEX128_PATTERN, 'must be 128 lowercase hex characters');
const timestamp = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/** A NIP-01 event as received, before its id and signature are checked. */
export const eventSchema = z.object({
  id: hex64,
  pubkey: hex64,
  created_at: timestamp,
  kind: z.number().int().min(0).max(MAX_EVENT_KIND),
  tags: z.array(z.array(z.string())),
  content: z.string(),
  sig: hex128,
});

const filterKnownKeys = new Set(['ids', 'authors', 'kinds', 'since', 'until', 'limit', 'seq_after', 'seq_until']);

/** A NIP-01 filter, plus the `seq_after`/`seq_until` extension; unknown fields are refused. */
export const filterSchema = z
  .object({
    ids: z.array(hex64).optional(),
    authors: z.array(hex64).optional(),
    kinds: z.array(z.number().int().min(0).max(65535)).optional(),
    since: timestamp.optional(),
    until: timestamp.optional(),
    limit: z.number().int().min(0).optional(),
    seq_after: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
    seq_until: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  })
  .catchall(z.unknown())
  .superRefine((f, ctx) => {
    for (const [key, value] of Object.entries(f)) {
      if (filterKnownKeys.has(key)) continue;
      if (!/^#[a-zA-Z]$/.test(key)) {
        ctx.addIssue({ code: 'custom', message: `unsupported filter field ${JSON.stringify(key.slice(0, 40))}` });
      } else if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
        ctx.addIssue({ code: 'custom', path: [key], message: 'tag filter values must be an array of strings' });
      }
    }
  });

/** A subscription id: 1 to 64 characters (NIP-01). */
export const subIdSchema = z.string().min(1, 'subscription id must not be empty').max(64, 'subscription id longer than 64 characters');

/** A NIP-77 negentropy message: lowercase or uppercase hex, whole bytes, at least the version byte. */
export const negMessageSchema = z.string().regex(/^(?:[0-9a-fA-F]{2})+$/, 'negentropy message must be hex (whole bytes)');
