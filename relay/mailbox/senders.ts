import type { Database } from 'better-sqlite3';
import { isPending, type MaybePromise } from '../store/types.js';

/** Where the sequence marks are kept, and the one question asked of the events (SQLite, or PostgreSQL's replayed reads). */
export interface SenderMarksStorage {
  /** Writes the mark of `now` (how far the sequence has got) and drops marks older than `pruneBefore`. */
  mark(now: number, pruneBefore: number): MaybePromise<void>;
  /** The seq of the newest mark at or before `at` (0 without one). */
  markBefore(at: number): MaybePromise<number>;
  /** Whether the key has an event stored at or below `seq`. */
  hasEventAtOrBelow(pubkey: string, seq: number): boolean;
}

/** The marks on a SQLite database. */
export function createSqliteSenderMarks(db: Database): SenderMarksStorage {
  const insert = db.prepare<[number]>(
    `INSERT INTO seq_marks (at, seq) VALUES (?, (SELECT coalesce(max(seq), 0) FROM events))
     ON CONFLICT (at) DO UPDATE SET seq = excluded.seq`,
  );
  const prune = db.prepare<[number]>('DELETE FROM seq_marks WHERE at < ?');
  const mark = db.transaction((now: number, pruneBefore: number) => {
    insert.run(now);
    prune.run(pruneBefore);
  });
  const before = db.prepare<[number]>('SELECT seq FROM seq_marks WHERE at <= ? ORDER BY at DESC LIMIT 1');
  const has = db.prepare<[string, number]>('SELECT 1 FROM events WHERE pubkey = ? AND seq <= ? LIMIT 1');
  return {
    mark: (now, pruneBefore) => void mark(now, pruneBefore),
    markBefore: (at) => (before.get(at) as { seq: number } | undefined)?.seq ?? 0,
    hasEventAtOrBelow: (pubkey, seq) => has.get(pubkey, seq) !== undefined,
  };
}

/**
 * Tells established senders from fresh keys without trusting `created_at` (which the sender chooses): the
 * relay writes down now and then how far its sequence had got (`seq_marks`), and a sender is established
 * when it has an event stored at or below the mark of `freshSeconds` ago. Making a key established costs
 * its owner an event stored here that long beforehand; a crowd made on the spot is all fresh.
 */
export class SenderAge {
  readonly freshSeconds: number;
  #now: () => number;
  #storage: SenderMarksStorage;
  #lastMarkAt = 0;
  #establishedSeq = 0;

  constructor(storage: SenderMarksStorage, freshSeconds: number, now: () => number) {
    this.freshSeconds = freshSeconds;
    this.#now = now;
    this.#storage = storage;
  }

  /** How often a mark is written: hourly, or more often for a short age. */
  get markEverySeconds(): number {
    return Math.max(1, Math.min(3600, Math.floor(this.freshSeconds / 4)));
  }

  /** Writes a mark when the last one is old enough, and moves the established bound on. */
  tick(): MaybePromise<void> {
    const now = this.#now();
    let marked: MaybePromise<void> | undefined;
    if (now - this.#lastMarkAt >= this.markEverySeconds) {
      // Kept: every mark younger than two ages, so the one of an age ago is always there.
      marked = this.#storage.mark(now, now - 2 * this.freshSeconds - this.markEverySeconds);
      this.#lastMarkAt = now;
    }
    const bound = () => {
      const seq = this.#storage.markBefore(now - this.freshSeconds);
      if (!isPending(seq)) return void (this.#establishedSeq = seq);
      return seq.then((s) => void (this.#establishedSeq = s));
    };
    return isPending(marked) ? marked.then(bound) : bound();
  }

  /** True when the sender had an event stored here at least `freshSeconds` ago. */
  isEstablished(pubkey: string): boolean {
    return this.#establishedSeq > 0 && this.#storage.hasEventAtOrBelow(pubkey, this.#establishedSeq);
  }
}
