type Listener = (...args: never[]) => void;

/** A minimal typed event emitter (browser-safe; node:events is not). Listener errors are contained. */
export class Emitter<Events extends Record<string, unknown[]>> {
  readonly #listeners = new Map<keyof Events, Set<Listener>>();

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof Events>(name: K, fn: (...args: Events[K]) => void): () => void {
    let set = this.#listeners.get(name);
    if (!set) this.#listeners.set(name, (set = new Set()));
    set.add(fn as unknown as Listener);
    return () => set.delete(fn as unknown as Listener);
  }

  /** Calls every listener of `name`; a throwing listener does not stop the others. */
  emit<K extends keyof Events>(name: K, ...args: Events[K]): void {
    const set = this.#listeners.get(name);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        (fn as unknown as (...a: Events[K]) => void)(...args);
      } catch {
        // a listener's failure is its own business
      }
    }
  }

  /** How many listeners `name` has. */
  count(name: keyof Events): number {
    return this.#listeners.get(name)?.size ?? 0;
  }
}

/** A pino-compatible structured logger (pino's child loggers fit); the client logs ids, never content or tokens. */
export interface ClientLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** A logger that drops everything (the default). */
export const silentLogger: ClientLogger = { debug() {}, info() {}, warn() {}, error() {} };
