import type { NostrEvent } from '../../shared/event.js';
import type { Filter } from '../../shared/filter.js';

/** What a policy may know about the sender. */
export interface PolicyContext {
  /** Pubkeys this connection has authenticated as (NIP-42). */
  readonly authed: ReadonlySet<string>;
  /** Remote address. */
  readonly ip: string;
  /** Now, in seconds. */
  readonly now: number;
  /** True for a replica relay allow-listed to read every private event (`replicaReaders`). */
  readonly readsPrivate?: boolean;
  /**
   * True for an event read from an upstream relay by replication (docs/federation.md): the same hooks
   * decide, but rules about the sender's connection and pace (rate limits, authentication, the
   * created_at past bound) do not refuse history; rules about the event itself still do.
   */
  readonly replicated?: boolean;
}

/** Returns a NIP-01 reason to refuse the event, or undefined to let it through. First refusal wins. */
export type RejectEvent = (event: NostrEvent, ctx: PolicyContext) => string | undefined;

/** Returns a NIP-01 reason to refuse a REQ or COUNT, or undefined. */
export type RejectFilter = (filters: readonly Filter[], ctx: PolicyContext) => string | undefined;

/** Runs hooks in order; the first reason wins. */
export function firstRejection<A extends unknown[]>(hooks: ReadonlyArray<(...args: A) => string | undefined>, ...args: A): string | undefined {
  for (const hook of hooks) {
    const r = hook(...args);
    if (r !== undefined) return r;
  }
  return undefined;
}
