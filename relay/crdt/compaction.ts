import type { Database, Statement } from 'better-sqlite3';
import { DocKind, getClockRange, isRangeCovered } from '../../shared/crdt-events.js';
import type { NostrEvent } from '../../shared/event.js';

/** One compaction: the deltas of `address` stored before `beforeSeq` that `stateVector` covers get `expiresAt`. */
export interface CompactionJob {
  address: string;
  stateVector: ReadonlyMap<number, number>;
  beforeSeq: number;
  /** Seconds since the epoch; the NIP-40 sweep deletes them after it (queries skip them from then on). */
  expiresAt: number;
}

/** How far one step of a job got. */
export interface CompactionStep {
  /** Deltas given an expiry in this step. */
  marked: number;
  /** Resume after this seq. */
  lastSeq: number;
  done: boolean;
}

/**
 * Relay-side compaction of shared documents: the expiry column the NIP-40 sweep already honours is
 * set on covered deltas, so they vanish from queries at `expiresAt` and from disk at the next sweep.
 * Coverage is the coarse, Yjs-free rule of docs/crdt.md: a delta is covered when the snapshot's state
 * vector reaches the end of its `clock` range. Deltas without a clock tag are never covered.
 */
export class DocCompactor {
  readonly #db: Database;
  readonly #page: Statement;
  readonly #expire: Statement;
  readonly #staleParts: Statement;

  constructor(db: Database) {
    this.#db = db;
    // Keyset walk of the (name, value, seq) tag index: a page costs the same at any depth.
    this.#page = db.prepare(
      `SELECT e.seq AS seq, e.raw AS raw FROM tags t JOIN events e ON e.seq = t.seq
        WHERE t.name = 'a' AND t.value = ? AND t.seq > ? AND t.seq < ?
          AND e.kind = ${DocKind.Update} AND e.expires_at IS NULL
        ORDER BY t.seq LIMIT ?`,
    );
    this.#expire = db.prepare('UPDATE events SET expires_at = ? WHERE seq = ? AND expires_at IS NULL');
    this.#staleParts = db.prepare(
      `SELECT e.seq AS seq, e.raw AS raw FROM tags t JOIN events e ON e.seq = t.seq
        WHERE t.name = 'a' AND t.value = ? AND e.kind = ${DocKind.Snapshot} AND e.pubkey = ? AND e.expires_at IS NULL`,
    );
  }

  /** Marks one page (at most `pageSize` deltas examined) of a job, starting after `afterSeq`. */
  step(job: CompactionJob, afterSeq: number, pageSize = 1000): CompactionStep {
    const rows = this.#page.all(job.address, afterSeq, job.beforeSeq, pageSize) as Array<{ seq: number; raw: string }>;
    const covered: number[] = [];
    for (const row of rows) {
      const clock = getClockRange(JSON.parse(row.raw) as NostrEvent);
      if (clock && isRangeCovered(clock, job.stateVector)) covered.push(row.seq);
    }
    this.#db.transaction(() => {
      for (const seq of covered) this.#expire.run(job.expiresAt, seq);
    })();
    const lastSeq = rows.length > 0 ? rows[rows.length - 1]!.seq : afterSeq;
    return { marked: covered.length, lastSeq, done: rows.length < pageSize };
  }

  /** Runs a whole job at once (tests, tools); the relay runs it step by step between other work. */
  run(job: CompactionJob, pageSize = 1000): number {
    let after = 0;
    let total = 0;
    for (;;) {
      const s = this.step(job, after, pageSize);
      total += s.marked;
      after = s.lastSeq;
      if (s.done) return total;
    }
  }

  /** Expires an author's snapshot parts of `address` left over from other generations than `generation`. */
  expireStaleParts(address: string, author: string, generation: string, expiresAt: number): number {
    const rows = this.#staleParts.all(address, author) as Array<{ seq: number; raw: string }>;
    let n = 0;
    this.#db.transaction(() => {
      for (const row of rows) {
        const ev = JSON.parse(row.raw) as NostrEvent;
        const part = ev.tags.find((t) => t[0] === 'part');
        if (part?.[3] !== generation) n += this.#expire.run(expiresAt, row.seq).changes;
      }
    })();
    return n;
  }
}
