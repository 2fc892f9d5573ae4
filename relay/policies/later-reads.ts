import type { NostrEvent } from '../../shared/event.js';
import type { Filter } from '../../shared/filter.js';
import { makeReason } from '../../shared/reason.js';
import { isPending, type EventStore, type MaybePromise, type PolicyClaims, type ReadOptions, type StoredEvent, type SyncEventReads } from '../store/types.js';
import type { PolicyContext, RejectEvent } from './types.js';

/** A read a replayed hook made that is not answered yet: the hook is stopped, the read fetched, the hook run again. */
class ReadMiss {
  constructor(
    readonly key: string,
    readonly fetch: () => MaybePromise<unknown>,
  ) {}
}

/** Rounds of reads one hook may need (a chain walk takes one per step) before it is answered with an error. */
const MAX_ROUNDS = 200;

/**
 * Synchronous reads over a store that answers later (PostgreSQL), for the policies written against
 * {@link SyncEventReads}. Inside {@link ReplayedReads.run} a hook reads from a cache of the answers
 * fetched for this one run; a read not cached yet stops the hook (it throws), is fetched, and the
 * hook runs again from the start with one more answer, until it finishes. So a hook run this way must
 * make its reads before its effects (the policies do: they decide, then claim). Each run starts with
 * an empty cache: no answer outlives the event it was read for.
 */
export class ReplayedReads implements SyncEventReads {
  readonly #store: Pick<EventStore, 'query' | 'isKnown'>;
  #cache: Map<string, unknown> | undefined;
  #active = false;

  constructor(store: Pick<EventStore, 'query' | 'isKnown'>) {
    this.#store = store;
  }

  /** One read by key: from this run's cache, or (a miss) stops the run until `fetch` has answered. */
  read<T>(key: string, fetch: () => MaybePromise<T>): T {
    if (!this.#active) throw new Error('a replayed read outside ReplayedReads.run');
    const c = this.#cache;
    if (c?.has(key)) return c.get(key) as T;
    throw new ReadMiss(key, fetch);
  }

  /** Stored events matching any filter, newest first (from this run's cache). */
  query(filters: readonly Filter[], opts?: ReadOptions & { limits?: readonly number[] }): StoredEvent[] {
    return this.read(`q${JSON.stringify(filters)}${opts ? JSON.stringify(opts) : ''}`, () => this.#store.query(filters, opts));
  }

  /** Whether the id is stored, or was deleted by `pubkey` (from this run's cache). */
  isKnown(id: string, pubkey?: string): 'stored' | 'deleted' | undefined {
    return this.read(`k${id}:${pubkey ?? ''}`, () => this.#store.isKnown(id, pubkey));
  }

  /**
   * Runs `fn` with these reads: at once when it reads nothing (most events concern no policy that
   * reads), else once more after each missing answer is fetched.
   */
  run<T>(fn: () => T): MaybePromise<T> {
    const miss = this.#attempt(fn, undefined);
    if (!(miss instanceof ReadMiss)) return miss;
    return this.#finish(fn, miss);
  }

  #attempt<T>(fn: () => T, cache: Map<string, unknown> | undefined): T | ReadMiss {
    this.#active = true;
    this.#cache = cache;
    try {
      return fn();
    } catch (err) {
      if (err instanceof ReadMiss) return err;
      throw err;
    } finally {
      this.#active = false;
      this.#cache = undefined;
    }
  }

  async #finish<T>(fn: () => T, first: ReadMiss): Promise<T> {
    const cache = new Map<string, unknown>();
    let miss: ReadMiss = first;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const v = miss.fetch();
      cache.set(miss.key, isPending(v) ? await v : v);
      const r = this.#attempt(fn, cache);
      if (!(r instanceof ReadMiss)) return r;
      miss = r;
    }
    throw new Error(`a policy needed more than ${MAX_ROUNDS} rounds of reads`);
  }
}

/** The claims a passing event must hold until it is stored: keys, and the reason a taken one gives. */
export interface ClaimRule {
  /** Keys only one event at a time may pass with (a `prev` that may have one successor, a key used once). */
  keys(event: NostrEvent): readonly string[];
  /** The refusal when `key` is held by another event, `holder`. */
  reason(key: string, holder: string): string;
}

/**
 * Runs a policy written against synchronous reads over a store that answers later, and closes the
 * check-then-insert race its rule has across instances. The verdict is read first; an event that passes
 * and names claim keys then claims them in the database (one row per key, unique: of two events racing
 * for a key on any instances exactly one gets it), and only then is decided again with fresh reads.
 * Read after the claim, the second decision sees every event that held the key before and has been stored
 * (a claim is released only once its event is stored or refused, or after `claimSeconds`).
 */
export function runWithLaterReads(
  reads: ReplayedReads,
  hook: RejectEvent,
  claims?: { store: PolicyClaims; rule: ClaimRule; held: Map<string, readonly string[]> },
): RejectEvent {
  const decide = (ev: NostrEvent, ctx: PolicyContext) => reads.run(() => hook(ev, ctx) as string | undefined);
  return function rejectWithLaterReads(ev, ctx) {
    const first = decide(ev, ctx);
    if (!claims) return first;
    if (isPending(first)) return first.then((v) => (v === undefined ? claimThenDecide(ev, ctx) : v));
    return first === undefined ? claimThenDecide(ev, ctx) : first;
  };

  function claimThenDecide(ev: NostrEvent, ctx: PolicyContext): MaybePromise<string | undefined> {
    const { store, rule, held } = claims!;
    const keys = rule.keys(ev);
    if (keys.length === 0) return undefined;
    return store.claim(keys, ev.id, ctx.now).then((taken) => {
      if (taken) return rule.reason(taken.key, taken.holder);
      held.set(ev.id, keys);
      return decide(ev, ctx);
    });
  }
}

/** Releases what an event claimed through {@link runWithLaterReads} (on onEventUnproven and onEventSaved). */
export function releaseClaims(store: PolicyClaims, held: Map<string, readonly string[]>, onError: (err: unknown) => void): (ev: NostrEvent) => void {
  return function releasePolicyClaims(ev) {
    const keys = held.get(ev.id);
    if (keys === undefined) return;
    held.delete(ev.id);
    store.release(keys, ev.id).catch(onError);
  };
}

/** Claims kept in this process: for a store that answers later but has no other writer. */
export function createLocalClaims(claimSeconds = 60): PolicyClaims {
  const rows = new Map<string, { id: string; at: number }>();
  return {
    async claim(keys, id, now) {
      for (const key of keys) {
        const c = rows.get(key);
        if (c && c.id !== id && now - c.at <= claimSeconds) return { key, holder: c.id };
      }
      for (const key of keys) rows.set(key, { id, at: now });
      return undefined;
    },
    async release(keys, id) {
      for (const key of keys) if (rows.get(key)?.id === id) rows.delete(key);
    },
  };
}

/** A reason for a claim held by another event, for rules whose key names a predecessor (`prev:<id>`) or a key (`key:<pubkey>`). */
export function makeClaimReason(key: string, holder: string): string {
  const [kind, value] = [key.slice(0, key.indexOf(':')), key.slice(key.indexOf(':') + 1)];
  if (kind === 'key') return makeReason('invalid', `key ${value} was already revealed by key event ${holder}`);
  if (kind === 'task') return makeReason('invalid', `step ${value} already has a successor (${holder}): name the latest step as prev`);
  return makeReason('invalid', `key event ${value} already has a successor (${holder})`);
}
