/** Stable codes of direct-link failures; tests assert the code, never the message. */
export type DirectErrorCode =
  | 'ROOST_ERR_DIRECT_UNAVAILABLE'
  | 'ROOST_ERR_DIRECT_SIGNAL'
  | 'ROOST_ERR_DIRECT_IDENTITY'
  | 'ROOST_ERR_DIRECT_REFUSED'
  | 'ROOST_ERR_DIRECT_FAILED'
  | 'ROOST_ERR_TIMEOUT'
  | 'ROOST_ERR_CLOSED';

/**
 * A failure of the direct-link layer. Same shape as the agent client's `ClientError` (a code and
 * details), so the client can fold these codes into its catalogue.
 */
export class DirectError extends Error {
  constructor(
    readonly code: DirectErrorCode,
    message: string,
    readonly details: { peer?: string; session?: string } = {},
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'RoostError';
  }
}
