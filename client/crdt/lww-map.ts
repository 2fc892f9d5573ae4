import type * as Y from 'yjs';
import { CrdtError } from './errors.js';
import { isJson, type Json } from './json.js';
import { SLOT_SEP, ownSlot, splitSlotKey, type ViewContext } from './view-context.js';

/** One writer's claim on a key: timestamp, value or tombstone. */
interface LwwEntry {
  t: number;
  v?: Json;
  d?: 1;
}

function isEntry(e: unknown): e is LwwEntry {
  if (typeof e !== 'object' || e === null) return false;
  const t = (e as LwwEntry).t;
  return typeof t === 'number' && Number.isFinite(t);
}

/** True when a user key is acceptable (non-empty is not required; the slot separator is forbidden). */
export function isValidKey(key: unknown): key is string {
  return typeof key === 'string' && !key.includes(SLOT_SEP) && key.length <= 1024;
}

/**
 * A last-writer-wins map over one root Y.Map. Each replica writes its claim under its own slot
 * (`key \0 clientID`), so concurrent writes all survive the Yjs merge; readers pick the claim with the highest
 * (timestamp, clientID). A write takes `max(now, highest seen + 1)`, so a writer that has seen a value always
 * beats it even with a slow clock, and it deletes the claims it supersedes, so a key holds one claim per
 * concurrent writer at most. Delete is a timestamped tombstone, so it competes like a write.
 */
export class LwwMap<V extends Json = Json> {
  readonly #ymap: Y.Map<unknown>;
  readonly #ctx: ViewContext;
  readonly #index = new Map<string, Map<number, LwwEntry>>();

  /** Wraps `ymap`; use `SharedDoc.map()` rather than constructing one. */
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
    if (value === undefined || !isEntry(value)) {
      slots?.delete(parsed.slot);
      if (slots && slots.size === 0) this.#index.delete(parsed.key);
      return;
    }
    if (!slots) this.#index.set(parsed.key, (slots = new Map()));
    slots.set(parsed.slot, value);
  }

  #winner(key: string): LwwEntry | undefined {
    const slots = this.#index.get(key);
    if (!slots) return undefined;
    let best: LwwEntry | undefined;
    let bestSlot = -1;
    for (const [slot, e] of slots) {
      if (!best || e.t > best.t || (e.t === best.t && slot > bestSlot)) {
        best = e;
        bestSlot = slot;
      }
    }
    return best;
  }

  #write(key: string, entry: Omit<LwwEntry, 't'>): void {
    this.#ctx.assertWritable();
    if (!isValidKey(key)) throw new CrdtError('ROOST_ERR_CRDT_BAD_KEY', 'key must be a string without NUL, at most 1024 chars');
    const mine = ownSlot(this.#ctx);
    const slots = this.#index.get(key) ?? new Map<number, LwwEntry>();
    let maxT = -Infinity;
    for (const e of slots.values()) if (e.t > maxT) maxT = e.t;
    const t = Math.max(Math.floor(this.#ctx.now()), maxT + 1);
    const full: LwwEntry = { ...entry, t };
    this.#ctx.ydoc.transact(() => {
      for (const slot of slots.keys()) if (slot !== mine) this.#ymap.delete(key + SLOT_SEP + slot);
      this.#ymap.set(key + SLOT_SEP + mine, full);
    });
    // observers run only after the outermost transaction; keep reads inside it consistent
    this.#index.set(key, new Map([[mine, full]]));
  }

  /** The winning value of `key`, or undefined when absent or deleted. Do not mutate the result. */
  get(key: string): V | undefined {
    const w = this.#winner(key);
    return w && !w.d ? (w.v as V) : undefined;
  }

  /** True when `key` holds a live value. */
  has(key: string): boolean {
    const w = this.#winner(key);
    return !!w && !w.d;
  }

  /** Writes `value` (JSON, copied) under `key`. */
  set(key: string, value: V): void {
    if (!isJson(value)) throw new CrdtError('ROOST_ERR_CRDT_BAD_VALUE', 'value must be JSON (finite numbers, plain objects)');
    this.#write(key, { v: structuredClone(value) });
  }

  /** Deletes `key` with a timestamped tombstone. */
  delete(key: string): void {
    if (this.has(key)) this.#write(key, { d: 1 });
  }

  /** Live keys, sorted. */
  keys(): string[] {
    return [...this.#index.keys()].filter((k) => this.has(k)).sort();
  }

  /** Live entries, sorted by key. */
  entries(): Array<[string, V]> {
    return this.keys().map((k) => [k, this.get(k) as V]);
  }

  /** Number of live keys. */
  get size(): number {
    return this.keys().length;
  }

  /** Live entries as a plain object with sorted keys. */
  toJSON(): Record<string, V> {
    return Object.fromEntries(this.entries());
  }

  /** Calls `listener` after every transaction that touched this map (local or remote); returns an unsubscribe. */
  observe(listener: () => void): () => void {
    const f = () => listener();
    this.#ymap.observe(f);
    return () => this.#ymap.unobserve(f);
  }
}
