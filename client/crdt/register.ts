import type { Json } from './json.js';
import type { LwwMap } from './lww-map.js';

/** A last-writer-wins register: a one-key view over an {@link LwwMap}. */
export class Register<V extends Json = Json> {
  readonly #map: LwwMap<V>;

  /** Wraps a map; use `SharedDoc.register()` rather than constructing one. */
  constructor(map: LwwMap<V>) {
    this.#map = map;
  }

  /** The current value, or undefined when never set or cleared. */
  get(): V | undefined {
    return this.#map.get('');
  }

  /** Writes `value` (JSON, copied). */
  set(value: V): void {
    this.#map.set('', value);
  }

  /** Clears the register with a timestamped tombstone. */
  clear(): void {
    this.#map.delete('');
  }

  /** Calls `listener` after every transaction that touched the register; returns an unsubscribe. */
  observe(listener: () => void): () => void {
    return this.#map.observe(listener);
  }
}
