import type { VerifiedEvent } from '../../shared/event.js';
import type { Filter } from '../../shared/filter.js';
import type { SqliteStore } from '../../relay/store/sqlite.js';
import type { EventStore, ReadOptions, StoreCapabilities } from '../../relay/store/types.js';

/** A store that forwards everything to a SQLite store without being one (as a tracing wrapper would). */
export function makeForwardingStore(inner: SqliteStore): EventStore {
  return {
    provides: inner.provides,
    write: (e) => inner.write(e),
    query: (f, o) => inner.query(f, o),
    querySeqs: (f, o) => inner.querySeqs(f, o),
    getRaw: (s) => inner.getRaw(s),
    querySeq: (f, a, u, l, o) => inner.querySeq(f, a, u, l, o),
    count: (f, o) => inner.count(f, o),
    negentropyItems: (f, m, o) => inner.negentropyItems(f, m, o),
    isKnown: (id, pk) => inner.isKnown(id, pk),
    setOnStored: (fn) => inner.setOnStored(fn),
    lastSeq: () => inner.lastSeq(),
    catchUp: () => inner.catchUp(),
    sweepExpired: (n) => inner.sweepExpired(n),
    close: () => inner.close(),
  };
}

/**
 * A store that answers every read later, as a networked backend does: the read itself runs after
 * a few turns of the event loop (commits land in between), and it offers no synchronous reads.
 */
export function makeLateStore(inner: SqliteStore, turns = 3): EventStore {
  const later = <T>(fn: () => T): Promise<T> =>
    new Promise((resolve, reject) => {
      let n = turns;
      const tick = () => {
        if (--n > 0) return void setImmediate(tick);
        try {
          resolve(fn());
        } catch (err) {
          reject(err);
        }
      };
      setImmediate(tick);
    });
  const provides: StoreCapabilities = {};
  return {
    provides,
    write: (e: VerifiedEvent) => inner.write(e),
    query: (f: readonly Filter[], o?: ReadOptions & { limits?: readonly number[]; maxSeq?: number }) => later(() => inner.query(f, o)),
    querySeqs: (f, o) => later(() => inner.querySeqs(f, o)),
    getRaw: (s) => later(() => inner.getRaw(s)),
    querySeq: (f, a, u, l, o) => later(() => inner.querySeq(f, a, u, l, o)),
    count: (f, o) => later(() => inner.count(f, o)),
    negentropyItems: (f, m, o) => later(() => inner.negentropyItems(f, m, o)),
    isKnown: (id, pk) => later(() => inner.isKnown(id, pk)),
    setOnStored: (fn) => inner.setOnStored(fn),
    lastSeq: () => inner.lastSeq(),
    catchUp: () => inner.catchUp(),
    sweepExpired: (n) => later(() => inner.sweepExpired(n)),
    close: () => inner.close(),
  };
}
