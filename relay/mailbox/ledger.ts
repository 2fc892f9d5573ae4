import type { Database, Statement } from 'better-sqlite3';

/** Where one agent's mailbox stands. */
export interface MailboxStatus {
  /** Highest sequence number of an event addressed to the agent that the relay has delivered to it. */
  deliveredSeq: number;
  /** Stored, unexpired events addressed (`p` tag) to the agent with a higher sequence number. */
  undelivered: number;
}

/** The relay-wide backlog over every agent the ledger knows. */
export interface MailboxBacklog {
  /** Agents with a ledger row (they have authenticated or been delivered to). */
  agents: number;
  /** Agents with at least one undelivered event. */
  waiting: number;
  /** Undelivered events summed over agents (an event addressed to two agents counts twice). */
  undelivered: number;
}

/** Cached entries kept in memory before clean ones are dropped (they reload from disk). */
const MAX_CACHED = 100_000;

/**
 * Delivery accounting: per agent, the highest inbox sequence number delivered to a connection
 * authenticated as it. Deliveries only touch memory; dirty entries are written in one coalesced
 * transaction by `flush()`, so a crash forgets at most one flush interval (the agent then looks a
 * little more behind than it is, never ahead).
 */
export class DeliveryLedger {
  #db: Database;
  #now: () => number;
  #delivered = new Map<string, number>();
  #dirty = new Set<string>();
  #needles = new Map<string, string>();
  #s: { load: Statement; upsert: Statement; count: Statement; backlog: Statement; agents: Statement };

  constructor(db: Database, now: () => number) {
    this.#db = db;
    this.#now = now;
    this.#s = {
      load: db.prepare('SELECT delivered_seq FROM mailbox_delivery WHERE pubkey = ?').pluck(),
      upsert: db.prepare(
        `INSERT INTO mailbox_delivery (pubkey, delivered_seq, updated_at) VALUES (?, ?, ?)
         ON CONFLICT (pubkey) DO UPDATE SET delivered_seq = max(delivered_seq, excluded.delivered_seq), updated_at = excluded.updated_at`,
      ),
      // GROUP BY folds an event that repeats the p tag; the range walks tags_value_seq.
      count: db
        .prepare(
          `SELECT count(*) FROM (SELECT t.seq FROM tags t CROSS JOIN events e ON e.seq = t.seq
           WHERE t.name = 'p' AND t.value = ? AND t.seq > ? AND (e.expires_at IS NULL OR e.expires_at > ?) GROUP BY t.seq)`,
        )
        .pluck(),
      backlog: db.prepare(
        `SELECT count(DISTINCT pubkey) AS waiting, count(*) AS undelivered FROM (
           SELECT m.pubkey, t.seq FROM mailbox_delivery m
           CROSS JOIN tags t ON t.name = 'p' AND t.value = m.pubkey AND t.seq > m.delivered_seq
           CROSS JOIN events e ON e.seq = t.seq
           WHERE e.expires_at IS NULL OR e.expires_at > ?
           GROUP BY m.pubkey, t.seq)`,
      ),
      agents: db.prepare('SELECT count(*) FROM mailbox_delivery').pluck(),
    };
  }

  /** Highest delivered inbox seq of the agent (0 when nothing was delivered yet). */
  deliveredSeq(pubkey: string): number {
    let seq = this.#delivered.get(pubkey);
    if (seq === undefined) {
      seq = (this.#s.load.get(pubkey) as number | undefined) ?? 0;
      if (this.#delivered.size >= MAX_CACHED) this.#dropClean();
      this.#delivered.set(pubkey, seq);
    }
    return seq;
  }

  /** Makes sure the agent has a ledger row (written with the next flush). */
  register(pubkey: string): void {
    this.deliveredSeq(pubkey);
    this.#dirty.add(pubkey);
  }

  /**
   * Records that a stored event was sent to a connection authenticated as `authed`: for each of
   * those agents the event is addressed to, the delivered seq moves up. `raw` is the stored JSON
   * (JSON.stringify of the event), where `["p","<pubkey>"` can only occur as the start of a p tag.
   */
  noteDelivered(authed: ReadonlySet<string>, seq: number, raw: string): void {
    for (const pk of authed) {
      if (seq <= this.deliveredSeq(pk)) continue;
      let needle = this.#needles.get(pk);
      if (needle === undefined) this.#needles.set(pk, (needle = `["p","${pk}"`));
      if (!raw.includes(needle)) continue;
      this.#delivered.set(pk, seq);
      this.#dirty.add(pk);
    }
  }

  /** Exact number of stored, unexpired events addressed to the agent after `afterSeq`. */
  countAfter(pubkey: string, afterSeq: number): number {
    return this.#s.count.get(pubkey, afterSeq, this.#now()) as number;
  }

  /** The agent's delivered seq and how many addressed events are still undelivered. */
  status(pubkey: string): MailboxStatus {
    const deliveredSeq = this.deliveredSeq(pubkey);
    return { deliveredSeq, undelivered: this.countAfter(pubkey, deliveredSeq) };
  }

  /** The relay-wide backlog (flushes first, so it reflects every delivery so far). */
  backlog(): MailboxBacklog {
    this.flush();
    const r = this.#s.backlog.get(this.#now()) as { waiting: number; undelivered: number };
    return { agents: this.#s.agents.get() as number, waiting: r.waiting, undelivered: r.undelivered };
  }

  #dropClean(): void {
    for (const pk of this.#delivered.keys()) if (!this.#dirty.has(pk)) this.#delivered.delete(pk);
    this.#needles.clear();
  }

  /** Writes every changed entry in one transaction; returns how many. */
  flush(): number {
    if (this.#dirty.size === 0) return 0;
    const now = this.#now();
    const dirty = [...this.#dirty];
    this.#db.transaction(() => {
      for (const pk of dirty) this.#s.upsert.run(pk, this.#delivered.get(pk) ?? 0, now);
    })();
    this.#dirty.clear();
    return dirty.length;
  }
}
