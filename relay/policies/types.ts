import type { NostrEvent } from '../../shared/event.js';
import type { Filter } from '../../shared/filter.js';
import type { MaybePromise } from '../store/types.js';

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

/**
 * Returns a NIP-01 reason to refuse the event, or undefined to let it through. First refusal wins. A
 * hook that reads a networked store answers with a promise of its verdict; the event waits for it
 * before verification, storage and the OK (hooks on SQLite answer at once, and nothing waits).
 */
export type RejectEvent = (event: NostrEvent, ctx: PolicyContext) => MaybePromise<string | undefined>;

/** Returns a NIP-01 reason to refuse a REQ or COUNT, or undefined. */
export type RejectFilter = (filters: readonly Filter[], ctx: PolicyContext) => string | undefined;

/** Runs filter hooks in order; the first reason wins. */
export function firstRejection<A extends unknown[]>(hooks: ReadonlyArray<(...args: A) => string | undefined>, ...args: A): string | undefined {
  for (const hook of hooks) {
    const r = hook(...args);
    if (r !== undefined) return r;
  }
  return undefined;
}

/**
 * Runs event hooks in order; the first reason wins. While every hook answers at once this is a plain
 * loop (no promise, no await); from the first hook that answers later, the rest run after it settles.
 */
export function firstEventRejection(hooks: readonly RejectEvent[], event: NostrEvent, ctx: PolicyContext): MaybePromise<string | undefined> {
  for (let i = 0; i < hooks.length; i++) {
    const r = hooks[i]!(event, ctx);
    if (r === undefined) continue;
    // instanceof, not a `then` lookup: a reason is a string, and a property lookup would box it.
    if (r instanceof Promise) return finishLater(r, hooks, i + 1, event, ctx);
    return r;
  }
  return undefined;
}

async function finishLater(
  first: Promise<string | undefined>,
  hooks: readonly RejectEvent[],
  from: number,
  event: NostrEvent,
  ctx: PolicyContext,
): Promise<string | undefined> {
  const r = await first;
  if (r !== undefined) return r;
  for (let i = from; i < hooks.length; i++) {
    const next = hooks[i]!(event, ctx);
    const v = next instanceof Promise ? await next : next;
    if (v !== undefined) return v;
  }
  return undefined;
}
