import { z } from 'zod';

/**
 * Frames on a direct link's data channel (JSON text). `hello` and `proof` make the
 * challenge–response, `ready` says the sender accepted the peer's proof (a link carries messages
 * only once each side has verified the other and heard the other's `ready`); `msg` carries application messages numbered per link, `ack` acknowledges
 * cumulatively; `ping`/`pong` keep the link proven alive.
 */

/** Label of the data channel. */
export const DIRECT_CHANNEL_LABEL = 'roost-direct/1';

const hex64 = z.string().regex(/^[0-9a-f]{64}$/);
const seq = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);

/** Every data-channel frame, validated once when it arrives. */
export const linkFrameSchema = z.discriminatedUnion('t', [
  z.object({ t: z.literal('hello'), nonce: hex64 }),
  z.object({ t: z.literal('proof'), event: z.record(z.string(), z.unknown()) }),
  z.object({ t: z.literal('ready') }),
  z.object({ t: z.literal('msg'), seq, id: z.string().min(1).max(128), data: z.string() }),
  z.object({ t: z.literal('ack'), seq }),
  z.object({ t: z.literal('ping') }),
  z.object({ t: z.literal('pong') }),
]);

/** A data-channel frame. */
export type LinkFrame = z.infer<typeof linkFrameSchema>;

/** Parses one frame; undefined when it is not a valid frame (the link treats that as a protocol error). */
export function parseLinkFrame(text: unknown): LinkFrame | undefined {
  if (typeof text !== 'string') return undefined;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return undefined;
  }
  const r = linkFrameSchema.safeParse(json);
  return r.success ? r.data : undefined;
}

/** Serialises one frame. */
export function encodeLinkFrame(frame: LinkFrame): string {
  return JSON.stringify(frame);
}
