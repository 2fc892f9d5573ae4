import { z } from 'zod';
import type { RtcIceServer } from './rtc.js';

/** The NIP-11 field under which a relay advertises STUN/TURN servers for direct links. */
export const ICE_SERVERS_FIELD = 'ice_servers';

const iceUrl = z.string().regex(/^(stuns?|turns?):[^\s]+$/).max(512);

/** One ICE server as advertised or configured (the W3C `RTCIceServer` shape). */
export const iceServerSchema = z.object({
  urls: z.union([iceUrl, z.array(iceUrl).min(1).max(16)]),
  username: z.string().max(512).optional(),
  credential: z.string().max(512).optional(),
});

/** A list of ICE servers. */
export const iceServersSchema = z.array(iceServerSchema).max(16);

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
