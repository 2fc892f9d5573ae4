/**
 * Coded errors of the CRDT core. Same shape as the relay's `RoostError` (which lives in relay/config.ts and
 * cannot be imported from client/); tests assert `code`, never the message.
 */
export type CrdtErrorCode =
  | 'ROOST_ERR_CRDT_READ_ONLY'
  | 'ROOST_ERR_CRDT_NOT_OWNER'
  | 'ROOST_ERR_CRDT_BAD_KEY'
  | 'ROOST_ERR_CRDT_BAD_VALUE'
  | 'ROOST_ERR_CRDT_PENDING'
  | 'ROOST_ERR_CRDT_TYPE_CLASH'
  | 'ROOST_ERR_CRDT_BAD_WIRE';

/** A failure inside the CRDT core, carrying a stable `ROOST_ERR_CRDT_*` code. */
export class CrdtError extends Error {
  constructor(
    readonly code: CrdtErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'RoostError';
  }
}
