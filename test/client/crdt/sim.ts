/** Seeded simulation helpers for the CRDT tests: PRNG, pubkeys, replicas, a lossy connector, a relay log. */
import { createSharedDoc, type SharedDoc } from '../../../client/crdt/shared-doc.js';
import type { DocTransport, LocalUpdateMeta, UpdateReceiver } from '../../../client/crdt/transport.js';
import { createRng } from '../../helpers/prng.js';

/** The shared seeded PRNG (test/helpers/prng.ts), as a function returning floats in [0, 1). */
export function makeRng(seed: number): () => number {
  return createRng(seed).next;
}

/** Integer in [0, n). */
export function pick(rng: () => number, n: number): number {
  return Math.floor(rng() * n);
}

/** A fake (well-formed) hex pubkey for replica `i`. */
export function pk(i: number): string {
  return (i + 1).toString(16).padStart(64, 'a');
}

/** The address every simulated replica shares. */
export const OWNER = pk(0);

/** Creates replica `i` of `n` (all members), with a seeded client id and a skewed clock. */
export function makeReplica(i: number, n: number, opts: { rng: () => number; clock: () => number; docId?: string }): SharedDoc {
  const skew = Math.floor((opts.rng() - 0.5) * 10_000);
  return createSharedDoc({
    docId: opts.docId ?? 'doc',
    self: pk(i),
    membership: { owner: OWNER, members: Array.from({ length: n }, (_, k) => pk(k)) },
    clientId: 1 + pick(opts.rng, 0x7fffffff),
    now: () => opts.clock() + skew,
  });
}

/** A message in flight. */
interface Flight {
  to: number;
  due: number;
  update: Uint8Array;
  meta: LocalUpdateMeta;
}

/**
 * An in-memory connector that loses, duplicates, delays and reorders messages, with partitions and offline
 * replicas. Reliable anti-entropy (state-vector exchange) runs only in `heal()`.
 */
export class LossyNetwork {
  readonly docs: SharedDoc[] = [];
  readonly #receivers: Array<UpdateReceiver | undefined> = [];
  readonly #rng: () => number;
  readonly #opts: { loss: number; dup: number; maxDelay: number };
  #flights: Flight[] = [];
  time = 0;
  /** Replica index -> partition group; replicas in different groups cannot talk. */
  readonly group = new Map<number, number>();
  readonly offline = new Set<number>();
  published = 0;

  constructor(rng: () => number, opts: { loss: number; dup: number; maxDelay: number }) {
    this.#rng = rng;
    this.#opts = opts;
  }

  /** Connects `doc` as the next replica. */
  join(doc: SharedDoc): void {
    const index = this.docs.length;
    this.docs.push(doc);
    this.#receivers.push(undefined);
    const transport: DocTransport = {
      publish: (update, meta) => this.#publish(index, update, meta),
      attach: (receive) => {
        this.#receivers[index] = receive;
        return () => {
          this.#receivers[index] = undefined;
        };
      },
    };
    doc.connect(transport);
  }

  #linked(a: number, b: number): boolean {
    if (this.offline.has(a) || this.offline.has(b)) return false;
    return (this.group.get(a) ?? 0) === (this.group.get(b) ?? 0);
  }

  #publish(from: number, update: Uint8Array, meta: LocalUpdateMeta): void {
    this.published++;
    for (let to = 0; to < this.docs.length; to++) {
      if (to === from || !this.#linked(from, to) || this.#rng() < this.#opts.loss) continue;
      const copies = this.#rng() < this.#opts.dup ? 2 : 1;
      for (let c = 0; c < copies; c++) this.#flights.push({ to, due: this.time + 1 + pick(this.#rng, this.#opts.maxDelay), update, meta });
    }
  }

  /** Advances time by one tick and delivers due messages in random order (dropping those across a cut). */
  step(): void {
    this.time++;
    const due = this.#flights.filter((f) => f.due <= this.time);
    this.#flights = this.#flights.filter((f) => f.due > this.time);
    for (let i = due.length - 1; i > 0; i--) {
      const j = pick(this.#rng, i + 1);
      [due[i], due[j]] = [due[j]!, due[i]!];
    }
    for (const f of due) {
      const from = this.docs.findIndex((d) => d.self === f.meta.author);
      if (!this.#linked(from, f.to)) continue;
      this.#receivers[f.to]?.(f.update, { author: f.meta.author, kind: 'delta' });
    }
  }

  /** Delivers everything still in flight. */
  drain(maxSteps = 1000): void {
    for (let i = 0; i < maxSteps && this.#flights.length > 0; i++) this.step();
  }

  /** Ends partitions and outages, then runs reliable all-pairs state-vector sync until nothing changes. */
  heal(): void {
    this.group.clear();
    this.offline.clear();
    this.drain();
    for (let round = 0; round < 3; round++) {
      for (const a of this.docs) {
        for (const b of this.docs) {
          if (a !== b) b.receive(a.diff(b.stateVector()), { author: a.self, kind: 'sync' });
        }
      }
    }
  }
}

/** One entry of the simulated relay log. */
export interface Logged {
  update: Uint8Array;
  meta: LocalUpdateMeta;
}

/**
 * A store-and-forward relay model: online replicas append to one log (offline ones keep an outbox and flush
 * it on reconnect); each replica reads the log from its own cursor in shuffled batches, with duplicates.
 */
export class RelayLog {
  readonly docs: SharedDoc[] = [];
  readonly log: Logged[] = [];
  readonly offline = new Set<number>();
  readonly #outbox: Logged[][] = [];
  readonly #cursor: number[] = [];
  readonly #rng: () => number;

  constructor(rng: () => number) {
    this.#rng = rng;
  }

  /** Connects `doc` as the next replica. */
  join(doc: SharedDoc): void {
    const index = this.docs.length;
    this.docs.push(doc);
    this.#outbox.push([]);
    this.#cursor.push(0);
    doc.connect({
      publish: (update, meta) => {
        if (this.offline.has(index)) this.#outbox[index]!.push({ update, meta });
        else this.log.push({ update, meta });
      },
    });
  }

  /** Takes replica `i` offline or back online (flushing its outbox). */
  setOffline(i: number, off: boolean): void {
    if (off) this.offline.add(i);
    else {
      this.offline.delete(i);
      this.log.push(...this.#outbox[i]!.splice(0));
    }
  }

  /** Lets online replica `i` read up to `max` new log entries, shuffled, some twice. */
  read(i: number, max: number): void {
    if (this.offline.has(i)) return;
    const start = this.#cursor[i]!;
    const batch = this.log.slice(start, start + max);
    this.#cursor[i] = start + batch.length;
    const order = batch.flatMap((e) => (this.#rng() < 0.1 ? [e, e] : [e]));
    for (let k = order.length - 1; k > 0; k--) {
      const j = pick(this.#rng, k + 1);
      [order[k], order[j]] = [order[j]!, order[k]!];
    }
    for (const e of order) this.docs[i]!.receive(e.update, { author: e.meta.author, kind: 'delta' });
  }
}

/** Applies one random operation (of every typed primitive, plus raw Y.Array edits) to `doc`. */
export function randomOp(doc: SharedDoc, rng: () => number): void {
  const k = pick(rng, 6);
  switch (pick(rng, 12)) {
    case 0:
      doc.status().set(['mood', 'energy', 'caps'][pick(rng, 3)]!, { v: pick(rng, 100), by: doc.self.slice(-2) });
      break;
    case 1:
      doc.status().delete(['mood', 'energy', 'caps'][pick(rng, 3)]!);
      break;
    case 2:
      doc.map('tasks').set(`t${k}`, { state: ['todo', 'doing', 'done'][pick(rng, 3)]!, who: doc.self.slice(-2) });
      break;
    case 3:
      doc.map('tasks').delete(`t${k}`);
      break;
    case 4:
      doc.set('peers').add(`p${k}`);
      break;
    case 5:
      doc.set('peers').remove(`p${k}`);
      break;
    case 6:
      doc.counters('trust').increment(`p${k}`, 1 + pick(rng, 3));
      break;
    case 7:
      doc.counters('trust').decrement(`p${k}`, 1 + pick(rng, 3));
      break;
    case 8:
      doc.register('leader').set(doc.self.slice(-4));
      break;
    case 9:
      doc.transact(() => {
        doc.set('peers').remove(`p${k}`);
        doc.counter('wakeups').increment();
        doc.map('tasks').set(`t${k}`, null);
      });
      break;
    case 10: {
      const arr = doc.ydoc.getArray<number>('log');
      arr.insert(pick(rng, arr.length + 1), [pick(rng, 1000)]);
      break;
    }
    default: {
      const arr = doc.ydoc.getArray<number>('log');
      if (arr.length > 0) arr.delete(pick(rng, arr.length), 1);
    }
  }
}

/** Everything a replica shows, as one comparable string. */
export function fingerprint(doc: SharedDoc): string {
  return JSON.stringify({ typed: doc.toJSON(), log: doc.ydoc.getArray('log').toJSON() });
}
