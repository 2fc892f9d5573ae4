import type { Database } from 'better-sqlite3';

/**
 * Tells established senders from fresh keys without trusting `created_at` (which the sender chooses): the
 * relay writes down now and then how far its sequence had got (`seq_marks`), and a sender is established
 * when it has an event stored at or below the mark of `freshSeconds` ago. Making a key established costs
 * its owner an event stored here that long beforehand; a crowd made on the spot is all fresh.
 */
export class SenderAge {
  readonly freshSeconds: number;
  #now: () => number;
  #mark: () => void;
  #markBefore: (at: number) => number;
  #hasEventAtOrBelow: (pubkey: string, seq: number) => boolean;
  #lastMarkAt = 0;
  #establishedSeq = 0;

  constructor(db: Database, freshSeconds: number, now: () => number) {
    this.freshSeconds = freshSeconds;
    this.#now = now;
    const insert = db.prepare<[number]>(
      `INSERT INTO seq_marks (at, seq) VALUES (?, (SELECT coalesce(max(seq), 0) FROM events))
       ON CONFLICT (at) DO UPDATE SET seq = excluded.seq`,
    );
    const prune = db.prepare<[number]>('DELETE FROM seq_marks WHERE at < ?');
    this.#mark = db.transaction(() => {
      const now = this.#now();
      insert.run(now);
      // Kept: every mark younger than two ages, so the one of an age ago is always there.
      prune.run(now - 2 * this.freshSeconds - this.markEverySeconds);
      this.#lastMarkAt = now;
    });
    const before = db.prepare<[number]>('SELECT seq FROM seq_marks WHERE at <= ? ORDER BY at DESC LIMIT 1');
    this.#markBefore = (at) => (before.get(at) as { seq: number } | undefined)?.seq ?? 0;
    const has = db.prepare<[string, number]>('SELECT 1 FROM events WHERE pubkey = ? AND seq <= ? LIMIT 1');
    this.#hasEventAtOrBelow = (pubkey, seq) => has.get(pubkey, seq) !== undefined;
  }

  /** How often a mark is written: hourly, or more often for a short age. */
  get markEverySeconds(): number {
    return Math.max(1, Math.min(3600, Math.floor(this.freshSeconds / 4)));
  }

  /** Writes a mark when the last one is old enough, and moves the established bound on. */
  tick(): void {
    const now = this.#now();
    if (now - this.#lastMarkAt >= this.markEverySeconds) this.#mark();
    this.#establishedSeq = this.#markBefore(now - this.freshSeconds);
  }

  /** True when the sender had an event stored here at least `freshSeconds` ago. */
  isEstablished(pubkey: string): boolean {
    return this.#establishedSeq > 0 && this.#hasEventAtOrBelow(pubkey, this.#establishedSeq);
  }
}
