import { makeReason } from './reason.js';

/**
 * The refusal of a sequence cursor ahead of the relay's history (docs/protocol.md, sequence
 * extension). The relay writes it, clients recognise it by its code — a fixed word right after the
 * NIP-01 `invalid:` prefix — never by the wording that follows.
 */

/** Code of the refusal, right after `invalid: `. */
export const HISTORY_RESET = 'history-reset';

/** The CLOSED reason for a `seq_after` past the newest sequence number the relay ever assigned. */
export function makeHistoryResetReason(after: number, newest: number): string {
  return makeReason('invalid', `${HISTORY_RESET}: seq_after ${after} is ahead of this relay's newest sequence number ${newest}; resume from 0`);
}

/** True when a CLOSED reason says the relay's history was reset (read again from 0). */
export function isHistoryReset(reason: string): boolean {
  return reason.startsWith(`invalid: ${HISTORY_RESET}:`);
}
