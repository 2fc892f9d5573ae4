import { ICE_SERVERS_FIELD, iceServersSchema } from '../../shared/ice-servers.js';
import type { RtcIceServer } from './rtc.js';

export { ICE_SERVERS_FIELD };

/** The ICE servers a relay's NIP-11 document advertises; [] when absent or malformed. */
export function getIceServers(info: unknown): RtcIceServer[] {
  if (!info || typeof info !== 'object') return [];
  const r = iceServersSchema.safeParse((info as Record<string, unknown>)[ICE_SERVERS_FIELD]);
  return r.success ? r.data.map((s) => ({ ...s })) : [];
}

/** Several relays' lists merged, duplicates (same urls and username) removed. */
export function mergeIceServers(lists: readonly RtcIceServer[][]): RtcIceServer[] {
  const out: RtcIceServer[] = [];
  const keys = new Set<string>();
  for (const s of lists.flat()) {
    const key = JSON.stringify([[s.urls].flat().sort(), s.username ?? '']);
    if (keys.has(key)) continue;
    keys.add(key);
    out.push(s);
  }
  return out;
}
