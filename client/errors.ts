import { getReasonPrefix, type ReasonPrefix } from '../shared/reason.js';

/** Stable codes of the agent client's failures; tests assert the code, never the message. */
export type ClientErrorCode =
  | 'ROOST_ERR_REFUSED'
  | 'ROOST_ERR_TIMEOUT'
  | 'ROOST_ERR_DISCONNECTED'
  | 'ROOST_ERR_CLOSED'
  | 'ROOST_ERR_BAD_KEY'
  | 'ROOST_ERR_KEY_FILE'
  | 'ROOST_ERR_BAD_INPUT'
  | 'ROOST_ERR_DECRYPT'
  | 'ROOST_ERR_NO_RELAY'
  | 'ROOST_ERR_UNREACHABLE'
  | 'ROOST_ERR_RELAY_INFO'
  | 'ROOST_ERR_TASK_ENDED'
  | 'ROOST_ERR_IDENTITY_DISPUTED'
  | 'ROOST_ERR_IDENTITY_CLOSED'
  | 'ROOST_ERR_KEY_REFUSED';

/**
 * A failure of the agent client, carrying a stable `ROOST_ERR_*` code (same shape as the relay's
 * `RoostError`, which lives in relay/ and cannot be imported here). A refusal by a relay also
 * carries the relay's reason, its NIP-01 prefix and the relay URL.
 */
export class ClientError extends Error {
  /** NIP-01 prefix of the relay's reason, for ROOST_ERR_REFUSED. */
  readonly prefix: ReasonPrefix | undefined;
  constructor(
    readonly code: ClientErrorCode,
    message: string,
    readonly details: { reason?: string; relay?: string; eventId?: string; causes?: Record<string, string> } = {},
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'RoostError';
    this.prefix = details.reason === undefined ? undefined : getReasonPrefix(details.reason);
  }
}

/** True for a relay refusal worth retrying later: rate limits and the relay's own errors. */
export function isTransientReason(reason: string): boolean {
  const p = getReasonPrefix(reason);
  return p === 'rate-limited' || p === 'error' || p === 'auth-required';
}
