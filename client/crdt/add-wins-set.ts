import type * as Y from 'yjs';
import { CrdtError } from './errors.js';
import { isValidKey } from './lww-map.js';
import type { ViewContext } from './view-context.js';

/**
 * An add-wins (observed-remove) set of strings over one root Y.Map. `add` always writes a fresh Yjs item
 * and `remove` deletes only the item it has seen, so an add concurrent with a remove survives the merge.
 */
export class AddWinsSet {
  readonly #ymap: Y.Map<unknown>;
  readonly #ctx: ViewContext;

  /** Wraps `ymap`; use `SharedDoc.set()` rather than constructing one. */
  constructor(ymap: Y.Map<unknown>, ctx: ViewContext) {
    this.#ymap = ymap;
    this.#ctx = ctx;
  }

  /** Adds `value`; writes even when present, which is what makes a concurrent remove lose. */
  add(value: string): void {
    this.#ctx.assertWritable();
    if (!isValidKey(value)) throw new CrdtError('ROOST_ERR_CRDT_BAD_KEY', 'set element must be a string without NUL, at most 1024 chars');
    this.#ctx.ydoc.transact(() => this.#ymap.set(value, 1));
  }

  /** Removes `value` as seen here; a concurrent add elsewhere wins. */
  remove(value: string): void {
    this.#ctx.assertWritable();
    if (this.#ymap.has(value)) this.#ctx.ydoc.transact(() => this.#ymap.delete(value));
  }

  /** True when `value` is in the set. */
  has(value: string): boolean {
    return this.#ymap.has(value);
  }

  /** Elements, sorted. */
  values(): string[] {
    return [...this.#ymap.keys()].sort();
  }

  /** Number of elements. */
  get size(): number {
    return this.#ymap.size;
  }

  /** Elements as a sorted array. */
  toJSON(): string[] {
    return this.values();
  }

  /** Calls `listener` after every transaction that touched the set; returns an unsubscribe. */
  observe(listener: () => void): () => void {
    const f = () => listener();
    this.#ymap.observe(f);
    return () => this.#ymap.unobserve(f);
  }
}
