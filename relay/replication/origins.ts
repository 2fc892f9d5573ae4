/** Most relays an origin chain keeps (a longer chain is cut: the nearest relays matter most for echoes). */
export const MAX_ORIGIN_CHAIN = 16;

const HEX64 = /^[0-9a-f]{64}$/;

/**
 * The origin chain a replica stores with an event: its upstream's pubkey, then the chain the upstream sent
 * (`via` in the EVENT frame), deduplicated, malformed entries dropped, at most {@link MAX_ORIGIN_CHAIN};
 * comma-separated, or undefined when empty.
 */
export function makeOriginChain(upstream: string | undefined, via: unknown): string | undefined {
  const out: string[] = [];
  const add = (k: unknown) => {
    if (typeof k === 'string' && HEX64.test(k) && !out.includes(k) && out.length < MAX_ORIGIN_CHAIN) out.push(k);
  };
  add(upstream);
  if (Array.isArray(via)) for (const k of via.slice(0, MAX_ORIGIN_CHAIN)) add(k);
  return out.length === 0 ? undefined : out.join(',');
}

/** Whether a stored origin chain names this relay pubkey (the event came from it, directly or through others). */
export function isInOriginChain(chain: string | undefined, pubkey: string | undefined): boolean {
  return chain !== undefined && pubkey !== undefined && chain.includes(pubkey);
}
