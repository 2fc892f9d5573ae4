import type * as Y from 'yjs';
import { CrdtError } from './errors.js';
import { isValidKey } from './lww-map.js';
import { SLOT_SEP, ownSlot, splitSlotKey, type ViewContext } from './view-context.js';

/** One writer's running totals for one counter: increments `p`, decrements `n` (both only grow). */
interface Tally {
  p: number;
  n: number;
}

function isTally(v: unknown): v is Tally {
  if (typeof v !== 'object' || v === null) return false;
  const { p, n } = v as Tally;
  return typeof p === 'number' && typeof n === 'number' && Number.isFinite(p) && Number.isFinite(n) && p >= 0 && n >= 0;
}

/**
 * A family of PN-counters (grow and shrink) over one root Y.Map, e.g. per-peer trust keyed by pubkey.
 * Each replica only ever rewrites its own slot (`key \0 clientID`) with its running totals, so no increment
 * is lost however updates are merged; the value is the sum over slots of `p - n`, summed in slot order so
 * every replica computes the same float.
 */
export class CounterMap {
  readonly #ymap: Y.Map<unknown>;
  readonly #ctx: ViewContext;
  readonly #index = new Map<string, Map<number, Tally>>();

  /** Wraps `ymap`; use `SharedDoc.counters()` rather than constructing one. */
  constructor(ymap: Y.Map<unknown>, ctx: ViewContext) {
    this.#ymap = ymap;
    this.#ctx = ctx;
    ymap.forEach((value, flat) => this.#note(flat, value));
    ymap.observe((event) => {
      for (const flat of event.keysChanged) this.#note(flat, ymap.get(flat));
    });
  }

  #note(flat: string, value: unknown): void {
    const parsed = splitSlotKey(flat);
    if (!parsed) return;
    let slots = this.#index.get(parsed.key);
    if (!isTally(value)) {
      slots?.delete(parsed.slot);
      if (slots && slots.size === 0) this.#index.delete(parsed.key);
      return;
    }
    if (!slots) this.#index.set(parsed.key, (slots = new Map()));
    slots.set(parsed.slot, value);
  }

  #add(key: string, dp: number, dn: number): void {
    this.#ctx.assertWritable();
    if (!isValidKey(key)) throw new CrdtError('ROOST_ERR_CRDT_BAD_KEY', 'key must be a string without NUL, at most 1024 chars');
    const mine = ownSlot(this.#ctx);
    const cur = this.#index.get(key)?.get(mine) ?? { p: 0, n: 0 };
    const next: Tally = { p: cur.p + dp, n: cur.n + dn };
    this.#ctx.ydoc.transact(() => this.#ymap.set(key + SLOT_SEP + mine, next));
    this.#note(key + SLOT_SEP + mine, next);
  }

  /** Adds `by` (positive, finite; default 1) to counter `key`. */
  increment(key: string, by = 1): void {
    if (!(Number.isFinite(by) && by > 0)) throw new CrdtError('ROOST_ERR_CRDT_BAD_VALUE', 'increment must be a positive finite number');
    this.#add(key, by, 0);
  }

  /** Subtracts `by` (positive, finite; default 1) from counter `key`. */
  decrement(key: string, by = 1): void {
    if (!(Number.isFinite(by) && by > 0)) throw new CrdtError('ROOST_ERR_CRDT_BAD_VALUE', 'decrement must be a positive finite number');
    this.#add(key, 0, by);
  }

  /** Current value of counter `key` (0 when never touched). */
  value(key: string): number {
    const slots = this.#index.get(key);
    if (!slots) return 0;
    let sum = 0;
    for (const slot of [...slots.keys()].sort((a, b) => a - b)) {
      const t = slots.get(slot)!;
      sum += t.p - t.n;
    }
    return sum;
  }

  /** Keys of counters ever touched, sorted. */
  keys(): string[] {
    return [...this.#index.keys()].sort();
  }

  /** Every counter's value as a plain object with sorted keys. */
  toJSON(): Record<string, number> {
    return Object.fromEntries(this.keys().map((k) => [k, this.value(k)]));
  }

  /** Calls `listener` after every transaction that touched these counters; returns an unsubscribe. */
  observe(listener: () => void): () => void {
    const f = () => listener();
    this.#ymap.observe(f);
    return () => this.#ymap.unobserve(f);
  }
}

/** A single PN-counter: a one-key view over a {@link CounterMap}. */
export class Counter {
  readonly #family: CounterMap;

  /** Wraps a family; use `SharedDoc.counter()` rather than constructing one. */
  constructor(family: CounterMap) {
    this.#family = family;
  }

  /** Adds `by` (default 1). */
  increment(by = 1): void {
    this.#family.increment('', by);
  }

  /** Subtracts `by` (default 1). */
  decrement(by = 1): void {
    this.#family.decrement('', by);
  }

  /** Current value. */
  value(): number {
    return this.#family.value('');
  }

  /** Calls `listener` after every transaction that touched the counter; returns an unsubscribe. */
  observe(listener: () => void): () => void {
    return this.#family.observe(listener);
  }
}
