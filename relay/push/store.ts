import type Database from 'better-sqlite3';
import type { DuePush } from './rules.js';
import type { WakePlatform, WakeTarget } from './types.js';

/** A pending per-agent wake. */
export interface PendingWake {
  owner: string;
  seq: number;
  queuedAt: number;
}

/** A released wake for one device, joined with the channel it goes to (absent when it was removed). */
export interface DueDelivery extends DuePush {
  registeredAt: number | undefined;
}

/** The per-agent rate window. */
export interface OwnerWindow {
  lastWakeAt: number | null;
  windowStart: number;
  windowCount: number;
}

/** A due push as both stores read it (snake_case columns). */
export interface DeliveryRow {
  owner: string;
  platform: WakePlatform;
  token: string;
  seq: number;
  queued_at: number;
  attempts: number;
  topic: string | null;
  environment: WakeTarget['environment'] | null;
  mode: WakeTarget['mode'] | null;
  registered_at: number | null;
}

/** A delivery row (either queue's: SQLite or PostgreSQL) as the loop reads it. */
export function readDuePush(r: Omit<DeliveryRow, 'registered_at'>): DuePush {
  return {
    owner: r.owner,
    platform: r.platform,
    token: r.token,
    seq: r.seq,
    queuedAt: r.queued_at,
    attempts: r.attempts,
    target: r.mode === null ? undefined : { platform: r.platform, token: r.token, topic: r.topic ?? '', environment: r.environment ?? '', mode: r.mode },
  };
}

/** Every SQL statement of the push subsystem (tables from migrations/0003_push.sql), prepared once. */
export class PushStore {
  readonly #db: Database.Database;
  readonly #s;

  constructor(db: Database.Database) {
    this.#db = db;
    this.#s = {
      queueWake: db.prepare<[{ owner: string; seq: number; now: number; interval: number }], { due_at: number }>(
        `INSERT INTO push_wakes (owner, seq, queued_at, due_at)
         SELECT owner, @seq, @now, max(@now, coalesce(last_wake_at + @interval, 0)) FROM push_owners WHERE owner = @owner
         ON CONFLICT (owner) DO NOTHING
         RETURNING due_at`,
      ),
      owner: db.prepare<[string], { event_created: number }>('SELECT event_created FROM push_owners WHERE owner = ?'),
      upsertOwner: db.prepare<[string, number]>(
        `INSERT INTO push_owners (owner, event_created) VALUES (?, ?)
         ON CONFLICT (owner) DO UPDATE SET event_created = excluded.event_created`,
      ),
      channelsOf: db.prepare<[string], { platform: WakePlatform; token: string; topic: string; environment: string; mode: string; registered_at: number }>(
        'SELECT platform, token, topic, environment, mode, registered_at FROM push_channels WHERE owner = ?',
      ),
      deleteChannel: db.prepare<[string, string, string]>('DELETE FROM push_channels WHERE owner = ? AND platform = ? AND token = ?'),
      upsertChannel: db.prepare<[string, string, string, string, string, string, number]>(
        `INSERT INTO push_channels (owner, platform, token, topic, environment, mode, registered_at) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (owner, platform, token) DO UPDATE SET topic = excluded.topic, environment = excluded.environment,
           mode = excluded.mode, registered_at = excluded.registered_at`,
      ),
      deleteWake: db.prepare<[string]>('DELETE FROM push_wakes WHERE owner = ?'),
      deleteDeliveriesOf: db.prepare<[string]>('DELETE FROM push_deliveries WHERE owner = ?'),
      ownersWithChannels: db.prepare<[], { owner: string }>('SELECT DISTINCT owner FROM push_channels'),
      hasChannels: db.prepare<[string], { one: number }>('SELECT 1 AS one FROM push_channels WHERE owner = ? LIMIT 1'),
      dueWakes: db.prepare<[number, number], { owner: string; seq: number; queued_at: number }>(
        'SELECT owner, seq, queued_at FROM push_wakes WHERE due_at <= ? ORDER BY due_at LIMIT ?',
      ),
      postponeWake: db.prepare<[number, string]>('UPDATE push_wakes SET due_at = ? WHERE owner = ?'),
      window: db.prepare<[string], { last_wake_at: number | null; window_start: number; window_count: number }>(
        'SELECT last_wake_at, window_start, window_count FROM push_owners WHERE owner = ?',
      ),
      setWindow: db.prepare<[number, number, number, string]>('UPDATE push_owners SET last_wake_at = ?, window_start = ?, window_count = ? WHERE owner = ?'),
      releaseWake: db.prepare<[{ owner: string; seq: number; queuedAt: number; now: number }]>(
        `INSERT INTO push_deliveries (owner, platform, token, seq, queued_at, attempts, due_at)
         SELECT owner, platform, token, @seq, @queuedAt, 0, @now FROM push_channels WHERE owner = @owner
         ON CONFLICT (owner, platform, token) DO UPDATE SET seq = min(seq, excluded.seq), queued_at = max(queued_at, excluded.queued_at)`,
      ),
      dueDeliveries: db.prepare<[number, number], DeliveryRow>(
        `SELECT d.owner, d.platform, d.token, d.seq, d.queued_at, d.attempts, c.topic, c.environment, c.mode, c.registered_at
         FROM push_deliveries d LEFT JOIN push_channels c ON c.owner = d.owner AND c.platform = d.platform AND c.token = d.token
         WHERE d.due_at <= ? ORDER BY d.due_at LIMIT ?`,
      ),
      claimDelivery: db.prepare<[number, number, string, string, string]>(
        'UPDATE push_deliveries SET due_at = ?, attempts = ? WHERE owner = ? AND platform = ? AND token = ?',
      ),
      deleteDelivery: db.prepare<[string, string, string]>('DELETE FROM push_deliveries WHERE owner = ? AND platform = ? AND token = ?'),
      pruneChannel: db.prepare<[string, string, string, number], { owner: string }>(
        'DELETE FROM push_channels WHERE owner = ? AND platform = ? AND token = ? AND registered_at < ? RETURNING owner',
      ),
      nextDue: db.prepare<[], { due_at: number | null }>(
        'SELECT min(due_at) AS due_at FROM (SELECT min(due_at) AS due_at FROM push_wakes UNION ALL SELECT min(due_at) FROM push_deliveries)',
      ),
      countWakes: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM push_wakes'),
      countDeliveries: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM push_deliveries'),
    };
  }

  /** Runs `fn` in one transaction (a savepoint inside an open one): one commit for many writes. */
  batch<T>(fn: () => T): T {
    return this.#db.transaction(fn)();
  }

  /** True while a transaction is open on the handle (the relay's group commit, for instance). */
  get inTransaction(): boolean {
    return this.#db.inTransaction;
  }

  /** Queues a wake unless one is pending or the agent has no registration; returns its due time when queued. */
  queueWake(owner: string, seq: number, now: number, minIntervalMs: number): number | undefined {
    return this.#s.queueWake.get({ owner, seq, now, interval: minIntervalMs })?.due_at;
  }

  /** created_at of the registration in force for `owner`, if any. */
  getRegistrationTime(owner: string): number | undefined {
    return this.#s.owner.get(owner)?.event_created;
  }

  /** True when `owner` has exactly these channels, all registered since `since`: re-registering them needs no write. */
  hasSameChannels(owner: string, targets: readonly WakeTarget[], since: number): boolean {
    const rows = this.#s.channelsOf.all(owner);
    if (rows.length !== targets.length) return false;
    const byKey = new Map(rows.map((r) => [`${r.platform}\u0000${r.token}`, r]));
    return targets.every((t) => {
      const r = byKey.get(`${t.platform}\u0000${t.token}`);
      return r !== undefined && r.topic === t.topic && r.environment === t.environment && r.mode === t.mode && r.registered_at >= since;
    });
  }

  /** Replaces `owner`'s channels with `targets`, in one transaction; returns how many channels it now has. */
  replaceChannels(owner: string, eventCreated: number, targets: readonly WakeTarget[], now: number): number {
    const run = this.#db.transaction(() => {
      this.#s.upsertOwner.run(owner, eventCreated);
      const keep = new Set(targets.map((t) => `${t.platform}\u0000${t.token}`));
      for (const c of this.#s.channelsOf.all(owner)) {
        if (!keep.has(`${c.platform}\u0000${c.token}`)) this.#s.deleteChannel.run(owner, c.platform, c.token);
      }
      for (const t of targets) this.#s.upsertChannel.run(owner, t.platform, t.token, t.topic, t.environment, t.mode, now);
      if (targets.length === 0) {
        this.#s.deleteWake.run(owner);
        this.#s.deleteDeliveriesOf.run(owner);
      }
      return targets.length;
    });
    return run();
  }

  /** The channels registered for `owner`. */
  getChannels(owner: string): WakeTarget[] {
    return this.#s.channelsOf.all(owner).map((c) => ({
      platform: c.platform,
      token: c.token,
      topic: c.topic,
      environment: c.environment as WakeTarget['environment'],
      mode: c.mode as WakeTarget['mode'],
    }));
  }

  /** Agents with at least one channel. */
  listOwnersWithChannels(): string[] {
    return this.#s.ownersWithChannels.all().map((r) => r.owner);
  }

  /** True when `owner` has at least one channel. */
  hasChannels(owner: string): boolean {
    return this.#s.hasChannels.get(owner) !== undefined;
  }

  /** Pending wakes due by `now`, oldest first. */
  listDueWakes(now: number, limit: number): PendingWake[] {
    return this.#s.dueWakes.all(now, limit).map((r) => ({ owner: r.owner, seq: r.seq, queuedAt: r.queued_at }));
  }

  /** Drops a pending wake (the agent came online, or it was released). */
  deleteWake(owner: string): void {
    this.#s.deleteWake.run(owner);
  }

  /** Moves a pending wake later (a rate cap). */
  postponeWake(owner: string, dueAt: number): void {
    this.#s.postponeWake.run(dueAt, owner);
  }

  /** The agent's rate window. */
  getWindow(owner: string): OwnerWindow | undefined {
    const r = this.#s.window.get(owner);
    return r && { lastWakeAt: r.last_wake_at, windowStart: r.window_start, windowCount: r.window_count };
  }

  /** Turns a pending wake into one delivery per channel and records it in the rate window, atomically. */
  releaseWake(wake: PendingWake, now: number, window: OwnerWindow): void {
    this.#db.transaction(() => {
      this.#s.releaseWake.run({ owner: wake.owner, seq: wake.seq, queuedAt: wake.queuedAt, now });
      this.#s.deleteWake.run(wake.owner);
      this.#s.setWindow.run(now, window.windowStart, window.windowCount, wake.owner);
    })();
  }

  /** Deliveries due by `now`, oldest first. */
  listDueDeliveries(now: number, limit: number): DueDelivery[] {
    return this.#s.dueDeliveries.all(now, limit).map((r) => ({ ...readDuePush(r), registeredAt: r.registered_at ?? undefined }));
  }

  /** Sets a delivery's next attempt time and attempt count (a claim before sending, or a retry). */
  scheduleDelivery(d: Pick<DueDelivery, 'owner' | 'platform' | 'token'>, dueAt: number, attempts: number): void {
    this.#s.claimDelivery.run(dueAt, attempts, d.owner, d.platform, d.token);
  }

  /** Removes a finished delivery. */
  deleteDelivery(d: Pick<DueDelivery, 'owner' | 'platform' | 'token'>): void {
    this.#s.deleteDelivery.run(d.owner, d.platform, d.token);
  }

  /**
   * Deletes one owner's registration of a token the push service refused for good, if made before `before`, with its
   * delivery; true when it was deleted. Only the registration that was sent is touched: anyone can register any token
   * under their own key with a wrong topic, so a refusal of that send says nothing about other owners' registrations
   * (each owner's own send discovers a token that is dead for everyone).
   */
  pruneChannel(owner: string, platform: WakePlatform, token: string, before: number): boolean {
    return this.#db.transaction(() => {
      const pruned = this.#s.pruneChannel.all(owner, platform, token, before).length > 0;
      this.#s.deleteDelivery.run(owner, platform, token);
      return pruned;
    })();
  }

  /** Earliest due time of any pending wake or delivery. */
  getNextDue(): number | undefined {
    return this.#s.nextDue.get()?.due_at ?? undefined;
  }

  /** Pending wakes and deliveries, for stats. */
  countPending(): { wakes: number; deliveries: number } {
    return { wakes: this.#s.countWakes.get()!.n, deliveries: this.#s.countDeliveries.get()!.n };
  }
}
