/**
 * SDP helpers for the identity binding: the DTLS certificate fingerprint an SDP commits to
 * (RFC 8122 `a=fingerprint:<hash> <hex pairs>`).
 */

const FINGERPRINT_LINE = /^a=fingerprint:(\S+)\s+([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})+)\s*$/;

/** Normalises a fingerprint to `<hash lowercase> <HEX:HEX…>`; undefined when malformed. */
export function normalizeFingerprint(fp: string): string | undefined {
  const m = /^(\S+)\s+([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})+)$/.exec(fp.trim());
  if (!m) return undefined;
  return `${m[1]!.toLowerCase()} ${m[2]!.toUpperCase()}`;
}

/**
 * The one DTLS fingerprint an SDP carries, normalised. Undefined when there is none, or when the
 * SDP lists several different ones (which certificate the peer will show would then be ambiguous).
 */
export function getSdpFingerprint(sdp: string): string | undefined {
  let found: string | undefined;
  for (const raw of sdp.split(/\r?\n/)) {
    const m = FINGERPRINT_LINE.exec(raw.trim());
    if (!m) continue;
    const fp = `${m[1]!.toLowerCase()} ${m[2]!.toUpperCase()}`;
    if (found !== undefined && found !== fp) return undefined;
    found = fp;
  }
  return found;
}

/** True when the SDP's single fingerprint is exactly `claimed` (after normalising both). */
export function matchSdpFingerprint(sdp: string, claimed: string): boolean {
  const inSdp = getSdpFingerprint(sdp);
  const want = normalizeFingerprint(claimed);
  return inSdp !== undefined && want !== undefined && inSdp === want;
}
