import { z } from 'zod';

/** The NIP-11 field under which a relay advertises STUN/TURN servers for agents' direct links. */
export const ICE_SERVERS_FIELD = 'ice_servers';

const iceUrl = z
  .string()
  .max(512)
  .regex(/^(stuns?|turns?):\S+$/, 'an ICE server URL starts with stun:, stuns:, turn: or turns:');

/** One STUN or TURN server (the W3C `RTCIceServer` shape). */
export const iceServerSchema = z.object({
  urls: z.union([iceUrl, z.array(iceUrl).min(1).max(16)]),
  username: z.string().max(512).optional(),
  credential: z.string().max(512).optional(),
});

/** A list of ICE servers. */
export const iceServersSchema = z.array(iceServerSchema).max(16);

/** One STUN or TURN server. */
export type IceServer = z.infer<typeof iceServerSchema>;

/**
 * ICE servers from a setting: a JSON array of `{urls, username?, credential?}`, or a
 * comma-separated list of URLs without credentials, or '' for none. Unparsable JSON is returned
 * as-is so that the schema reports it.
 */
export function parseIceServersSetting(value: string): unknown {
  const v = value.trim();
  if (v === '') return [];
  if (v.startsWith('[')) {
    try {
      return JSON.parse(v) as unknown;
    } catch {
      return v;
    }
  }
  return [
    {
      urls: v
        .split(',')
        .map((u) => u.trim())
        .filter(Boolean),
    },
  ];
}
