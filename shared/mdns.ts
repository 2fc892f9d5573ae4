import { z } from 'zod';
import type { EventTemplate } from './event.js';

/**
 * Local discovery over DNS-SD/mDNS (docs/protocol.md#local-discovery): what a relay and an agent put
 * in their TXT records, and the checks an answer must pass before it is used. Pure: the Node code
 * that publishes and browses (relay/mdns.ts, client/node/local-discovery.ts) calls these. Every answer
 * is untrusted input from anyone on the LAN.
 */

/** DNS-SD service type of a Nostr relay (`_nostr-relay._tcp.local`). */
export const RELAY_SERVICE_TYPE = 'nostr-relay';

/** DNS-SD service type of a Roost agent's presence (`_roost-agent._tcp.local`). */
export const AGENT_SERVICE_TYPE = 'roost-agent';

/**
 * Kind of the advertisement proof: a Nostr event that is never published, signed by the advertised
 * key over the advertised URL, whose `created_at` and signature travel in the TXT record.
 */
export const MDNS_ADVERT_KIND = 24341;

/** Most keys a TXT record may have, and most characters in a value: larger answers are refused whole. */
export const MAX_TXT_KEYS = 8;
export const MAX_TXT_VALUE = 255;

const hex = (n: number) => z.string().regex(new RegExp(`^[0-9a-f]{${n}}$`));
const wsUrl = z
  .string()
  .max(MAX_TXT_VALUE)
  .refine((v) => {
    try {
      const u = new URL(v);
      return (u.protocol === 'ws:' || u.protocol === 'wss:') && u.username === '' && u.password === '' && u.hostname !== '';
    } catch {
      return false;
    }
  }, 'a ws:// or wss:// URL');
const timestamp = z
  .string()
  .regex(/^\d{1,12}$/)
  .transform(Number);

/** TXT of a relay: its WebSocket URL (NIP-11 is served over HTTP at the same address), pubkey and proof. */
export const relayTxtSchema = z.object({ url: wsUrl, pubkey: hex(64), ts: timestamp, sig: hex(128) });

/** TXT of an agent: its pubkey, optionally the relay it can be reached on, and the proof. */
export const agentTxtSchema = z.object({ pubkey: hex(64), relay: wsUrl.optional(), ts: timestamp, sig: hex(128) });

/** A relay's advertisement, as its TXT record says (not yet verified). */
export type RelayTxt = z.infer<typeof relayTxtSchema>;
/** An agent's advertisement, as its TXT record says (not yet verified). */
export type AgentTxt = z.infer<typeof agentTxtSchema>;

/**
 * Reads a TXT record (bonjour-service gives an object of strings or buffers) against a schema.
 * Undefined when it has too many keys, a value too long, or does not match.
 */
export function parseTxt<S extends z.ZodTypeAny>(schema: S, txt: unknown): z.infer<S> | undefined {
  if (typeof txt !== 'object' || txt === null || Array.isArray(txt)) return undefined;
  const entries = Object.entries(txt as Record<string, unknown>);
  if (entries.length > MAX_TXT_KEYS) return undefined;
  const plain: Record<string, string> = {};
  for (const [k, v] of entries) {
    const s = typeof v === 'string' ? v : v instanceof Uint8Array ? new TextDecoder('utf-8', { fatal: false }).decode(v) : undefined;
    if (s === undefined || s.length > MAX_TXT_VALUE || k.length > 32) return undefined;
    plain[k] = s;
  }
  const r = schema.safeParse(plain);
  return r.success ? r.data : undefined;
}

/**
 * The event the advertised key signs: kind {@link MDNS_ADVERT_KIND}, a `u` tag naming the URL (the
 * relay's own, or the relay an agent is reached on), and the service type in a `t` tag. Binding the
 * URL means a copied TXT record only ever points at the address the key holder chose.
 */
export function makeAdvertTemplate(serviceType: string, url: string | undefined, createdAt: number): EventTemplate {
  const tags = [['t', serviceType]];
  if (url !== undefined) tags.push(['u', url]);
  return { kind: MDNS_ADVERT_KIND, created_at: createdAt, tags, content: '' };
}

/** Whether a ws(s) URL's host is one of the addresses the answer came from or named (IPv6 without brackets). */
export function isUrlAtAddress(url: string, addresses: readonly string[]): boolean {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return addresses.some((a) => a.toLowerCase() === host);
}

/** The port a ws(s) URL connects to. */
export function getUrlPort(url: string): number {
  const u = new URL(url);
  return u.port ? Number(u.port) : u.protocol === 'wss:' ? 443 : 80;
}
