/** NIP-01 machine-readable prefixes for OK and CLOSED messages. */
export type ReasonPrefix = 'invalid' | 'blocked' | 'rate-limited' | 'auth-required' | 'restricted' | 'duplicate' | 'pow' | 'mute' | 'error';

/** The one way to write a NIP-01 reason: `prefix: message`. */
export function makeReason(prefix: ReasonPrefix, message: string): string {
  return `${prefix}: ${message}`;
}

/** The prefix of a reason string, if it has a known one. */
export function getReasonPrefix(reason: string): ReasonPrefix | undefined {
  const i = reason.indexOf(':');
  if (i <= 0) return undefined;
  const p = reason.slice(0, i);
  return (REASON_PREFIXES as readonly string[]).includes(p) ? (p as ReasonPrefix) : undefined;
}

/** Every prefix Roost may send. */
export const REASON_PREFIXES: readonly ReasonPrefix[] = [
  'invalid',
  'blocked',
  'rate-limited',
  'auth-required',
  'restricted',
  'duplicate',
  'pow',
  'mute',
  'error',
];
