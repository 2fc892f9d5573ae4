import type { Logger } from 'pino';

/**
 * A client's mistakes (a frame over the size cap, a WebSocket protocol violation, a frame that is not
 * a Nostr message) are the client's problem, not the relay's: they are counted in metrics
 * (`roost_client_mistakes_total{kind}`), logged without a stack at info (the connection is closed) or
 * debug (it stays), and at most {@link MISTAKES_LOGGED_PER_CONNECTION} lines per connection, so a
 * hostile client cannot grow the log. Error level stays for the relay's own faults.
 */

/** What a client did wrong. */
export type ClientMistake = 'oversized' | 'protocol' | 'reset' | 'binary' | 'utf8' | 'malformed' | 'http_body';

/** Log lines per connection for its mistakes; the rest are only counted. */
export const MISTAKES_LOGGED_PER_CONNECTION = 3;

/**
 * The mistake behind an error the WebSocket layer raised on a client's socket, or undefined when it
 * is not the client's doing (then it is the relay's fault).
 */
export function getSocketErrorMistake(err: unknown): ClientMistake | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (typeof code !== 'string') return undefined;
  if (code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') return 'oversized';
  if (code.startsWith('WS_ERR_')) return 'protocol';
  if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'ETIMEDOUT' || code === 'ECONNABORTED') return 'reset';
  return undefined;
}

/** Per-connection state of the mistake log. */
export interface MistakeLog {
  mistakes: number;
}

/** Counts one mistake and logs it (no stack) unless this connection already used its log lines. */
export function logClientMistake(
  log: Pick<Logger, 'info' | 'debug'>,
  state: MistakeLog,
  counts: Map<string, number>,
  kind: ClientMistake,
  level: 'info' | 'debug',
  detail: { code?: string; message?: string } = {},
): void {
  counts.set(kind, (counts.get(kind) ?? 0) + 1);
  const n = ++state.mistakes;
  if (n > MISTAKES_LOGGED_PER_CONNECTION + 1) return;
  if (n === MISTAKES_LOGGED_PER_CONNECTION + 1) {
    log[level]({ mistake: kind }, 'client mistake (further ones on this connection are counted in metrics, not logged)');
    return;
  }
  log[level](
    { mistake: kind, ...(detail.code ? { code: detail.code } : {}), ...(detail.message ? { detail: detail.message.slice(0, 120) } : {}) },
    'client mistake',
  );
}
