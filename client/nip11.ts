import { ClientError } from './errors.js';

/** The parts of a relay's NIP-11 document the client uses. */
export interface RelayInfo {
  name?: string;
  /** The relay's own pubkey (wake registrations are encrypted to it). */
  pubkey?: string;
  supported_nips?: number[];
  roost_presence?: { path: string; max_pubkeys: number };
  [key: string]: unknown;
}

/** The fetch function the client uses (injected; the platform's by default). */
export type FetchLike = (
  url: string,
  init?: { headers?: Record<string, string>; signal?: AbortSignal },
) => Promise<{
  ok: boolean;
  status: number;
  json(): Promise<unknown>;
}>;

/** The http(s) URL of a ws(s) relay URL, with `path` appended to the relay's path. */
export function getRelayHttpUrl(relayUrl: string, path = ''): string {
  const u = new URL(relayUrl);
  u.protocol = u.protocol === 'wss:' ? 'https:' : 'http:';
  if (path) u.pathname = u.pathname.replace(/\/*$/, '/') + path;
  return u.toString();
}

/** Fetches the NIP-11 document; throws ROOST_ERR_RELAY_INFO. */
export async function fetchRelayInfo(relayUrl: string, fetchFn: FetchLike, timeoutMs = 5000): Promise<RelayInfo> {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), timeoutMs);
  try {
    const res = await fetchFn(getRelayHttpUrl(relayUrl), { headers: { Accept: 'application/nostr+json' }, signal: ctl.signal });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const body = await res.json();
    if (!body || typeof body !== 'object') throw new Error('not an object');
    return body as RelayInfo;
  } catch (err) {
    throw new ClientError('ROOST_ERR_RELAY_INFO', `cannot read NIP-11 of ${relayUrl}: ${(err as Error).message}`, { relay: relayUrl }, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}
