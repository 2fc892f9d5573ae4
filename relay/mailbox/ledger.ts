import type { Database } from 'better-sqlite3';
import { isPending, type MaybePromise } from '../store/types.js';

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

/** Where the ledger persists and what it counts (SQLite answers at once; PostgreSQL through replayed reads). */
export interface LedgerStorage {
  /**
   * True when `load` may be called anywhere (SQLite). False when it only answers inside a policy run
   * (replayed reads): deliveries and registrations then write without reading, and written entries
   * are dropped from memory after each flush so the next read takes the database's (highest) value.
   */
  readonly loadsAnywhere: boolean;
  /** The agent's stored delivered seq (0 without a row). */
  load(pubkey: string): number;
  /** Exact number of stored, unexpired events addressed to the agent after `afterSeq`. */
  count(pubkey: string, afterSeq: number, now: number): number;
  /** Raises the stored delivered seq of each agent (never lowers it). */
  save(entries: ReadonlyArray<readonly [string, number]>, now: number): MaybePromise<void>;
  /** The relay-wide backlog. */
  backlog(now: number): MaybePromise<MailboxBacklog>;
}

/** The ledger's statements on a SQLite database. */
export function createSqliteLedgerStorage(db: Database): LedgerStorage {
  const s = {
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
  const save = db.transaction((entries: ReadonlyArray<readonly [string, number]>, now: number) => {
    for (const [pk, seq] of entries) s.upsert.run(pk, seq, now);
  });
  return {
    loadsAnywhere: true,
    load: (pubkey) => (s.load.get(pubkey) as number | undefined) ?? 0,
    count: (pubkey, afterSeq, now) => s.count.get(pubkey, afterSeq, now) as number,
    save: (entries, now) => void save(entries, now),
    backlog(now) {
      const r = s.backlog.get(now) as { waiting: number; undelivered: number };
      return { agents: s.agents.get() as number, waiting: r.waiting, undelivered: r.undelivered };
    },
  };
}

/**
 * Delivery accounting: per agent, the highest inbox sequence number delivered to a connection
 * authenticated as it. Deliveries only touch memory; dirty entries are written in one coalesced
 * transaction by `flush()`, so a crash forgets at most one flush interval (the agent then looks a
 * little more behind than it is, never ahead).
 */
export class DeliveryLedger {
  #storage: LedgerStorage;
  #now: () => number;
  #delivered = new Map<string, number>();
  #dirty = new Set<string>();
  #needles = new Map<string, string>();
  /** Settles when every write begun so far has (a storage that writes later). */
  #saving: Promise<void> | undefined;

  constructor(storage: LedgerStorage, now: () => number) {
    this.#storage = storage;
    this.#now = now;
  }

  /** Highest delivered inbox seq of the agent (0 when nothing was delivered yet). */
  deliveredSeq(pubkey: string): number {
    // Shared with other instances: the database may be ahead of anything kept here, so it is read every time.
    if (!this.#storage.loadsAnywhere) return Math.max(this.#delivered.get(pubkey) ?? 0, this.#storage.load(pubkey));
    let seq = this.#delivered.get(pubkey);
    if (seq === undefined) {
      seq = this.#storage.load(pubkey);
      if (this.#delivered.size >= MAX_CACHED) this.#dropClean();
      this.#delivered.set(pubkey, seq);
    }
    return seq;
  }

  /** Makes sure the agent has a ledger row (written with the next flush). */
  register(pubkey: string): void {
    if (this.#storage.loadsAnywhere) this.deliveredSeq(pubkey);
    this.#dirty.add(pubkey);
  }

  /**
   * Records that a stored event was sent to a connection authenticated as `authed`: for each of
   * those agents the event is addressed to, the delivered seq moves up. `raw` is the stored JSON
   * (JSON.stringify of the event), where `["p","<pubkey>"` can only occur as the start of a p tag.
   */
  noteDelivered(authed: ReadonlySet<string>, seq: number, raw: string): void {
    const loads = this.#storage.loadsAnywhere;
    for (const pk of authed) {
      // Not loaded and not loadable here: the write raises the stored value at most (never lowers it).
      if (seq <= (loads ? this.deliveredSeq(pk) : (this.#delivered.get(pk) ?? 0))) continue;
      let needle = this.#needles.get(pk);
      if (needle === undefined) this.#needles.set(pk, (needle = `["p","${pk}"`));
      if (!raw.includes(needle)) continue;
      this.#delivered.set(pk, seq);
      this.#dirty.add(pk);
    }
  }

  /** Exact number of stored, unexpired events addressed to the agent after `afterSeq`. */
  countAfter(pubkey: string, afterSeq: number): number {
    return this.#storage.count(pubkey, afterSeq, this.#now());
  }

  /** The agent's delivered seq and how many addressed events are still undelivered. */
  status(pubkey: string): MailboxStatus {
    const deliveredSeq = this.deliveredSeq(pubkey);
    return { deliveredSeq, undelivered: this.countAfter(pubkey, deliveredSeq) };
  }

  /** The relay-wide backlog (flushes first, so it reflects every delivery so far). */
  backlog(): MaybePromise<MailboxBacklog> {
    const flushed = this.flush();
    if (isPending(flushed)) return flushed.then(() => this.#storage.backlog(this.#now()));
    return this.#storage.backlog(this.#now());
  }

  #dropClean(): void {
    for (const pk of this.#delivered.keys()) if (!this.#dirty.has(pk)) this.#delivered.delete(pk);
    this.#needles.clear();
  }

  /**
   * Writes every changed entry in one transaction; returns how many. A write that answers later settles
   * after every earlier one (a sweep that flushes first never runs ahead of a timer's flush in flight).
   */
  flush(): MaybePromise<number> {
    if (this.#dirty.size === 0) return this.#saving ? this.#saving.then(() => 0) : 0;
    const now = this.#now();
    const entries = [...this.#dirty].map((pk) => [pk, this.#delivered.get(pk) ?? 0] as const);
    this.#dirty.clear();
    let saved: MaybePromise<void>;
    try {
      saved = this.#storage.save(entries, now);
    } catch (err) {
      for (const [pk] of entries) this.#dirty.add(pk);
      throw err;
    }
    if (!isPending(saved)) return entries.length;
    const done = Promise.all([this.#saving, saved]).then(
      () => {
        // Written: the database now holds at least these values (reads take the higher of both).
        for (const [pk, seq] of entries) if (!this.#dirty.has(pk) && this.#delivered.get(pk) === seq) this.#delivered.delete(pk);
        return entries.length;
      },
      (err: unknown) => {
        for (const [pk] of entries) this.#dirty.add(pk);
        throw err;
      },
    );
    const settled: Promise<void> = done.then(
      () => {
        if (this.#saving === settled) this.#saving = undefined;
      },
      () => {
        if (this.#saving === settled) this.#saving = undefined;
      },
    );
    this.#saving = settled;
    return done;
  }
}
