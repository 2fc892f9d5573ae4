import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { NostrEvent } from '../../shared/event.js';
import { makeReason } from '../../shared/reason.js';
import { admitWakeRegistration, ConversationKeyCache, type WakeRegistrationResult } from './registration.js';
import { createWakeSenders, describeWake, getConfiguredPlatforms, type WakeDescription } from './senders.js';
import { inTransaction } from '../store/postgres-transaction.js';
import { readDuePush, type DeliveryRow } from './store.js';
import type { PushStats, PushWakeConfig } from './wake.js';
import { WakeLoop, type DueWake, type PushResult, type WakeDecision, type WakeQueueStore } from './loop.js';
import type { DuePush, WakeWindow } from './rules.js';
import { systemClock, type PushClock, type WakePlatform, type WakeSenders } from './types.js';

/** Push wake on a database shared by several relays (the cluster's counterpart of wake.ts). */
export interface SharedPushWake {
  /** Applies a verified kind-29059 event. */
  handleWakeRegistration(event: NostrEvent): Promise<WakeRegistrationResult>;
  /** Starts the pump: releases due wakes and sends due pushes, whichever instance queued them. */
  start(): void;
  /** Pumps until nothing this instance claimed is in flight (tests, shutdown). */
  runDue(): Promise<void>;
  /** Counters of this instance, and the shared queue as last seen. */
  stats(): PushStats;
  describeWake(): WakeDescription;
  /** Whether any push service is configured (wakes are queued only then). */
  enabled(): boolean;
  close(): Promise<void>;
}

/** What the shared push wake is built with. */
export interface SharedPushWakeDeps {
  pool: pg.Pool;
  secretKey: Uint8Array;
  pubkey: string;
  config: PushWakeConfig;
  log: Logger;
  senders?: WakeSenders;
  clock?: PushClock;
  random?: () => number;
}

const PUMP_MS = 500;

/** The relay's keypair on a shared database: created by the first instance, read by the others. */
export async function loadOrCreateSharedIdentity(pool: pg.Pool): Promise<Uint8Array> {
  await pool.query('INSERT INTO relay_identity (id, secret_key) VALUES (1, $1) ON CONFLICT (id) DO NOTHING', [randomBytes(32).toString('hex')]);
  const hex = (await pool.query<{ secret_key: string }>('SELECT secret_key FROM relay_identity WHERE id = 1')).rows[0]!.secret_key;
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

/**
 * The queueing statement run inside each write transaction: one wake per registered, offline
 * (no live presence row on any instance) `p`-tagged agent, keeping the first seq; none while one is
 * pending. `rows` is a FROM item `x(owner, seq)`; `now` and `interval` (ms) are SQL expressions.
 */
export function queueWakesSql(rows: string, now: string, interval: string): string {
  return `
  INSERT INTO push_wakes (owner, seq, queued_at, due_at)
  SELECT DISTINCT ON (o.owner) o.owner, x.seq, ${now}, GREATEST(${now}, COALESCE(o.last_wake_at + ${interval}, 0))
  FROM ${rows}
  JOIN push_owners o ON o.owner = x.owner
  WHERE EXISTS (SELECT 1 FROM push_channels c WHERE c.owner = x.owner)
    AND NOT EXISTS (SELECT 1 FROM presence p WHERE p.pubkey = x.owner AND p.expires_at > ${now})
  ORDER BY o.owner, x.seq
  ON CONFLICT (owner) DO NOTHING`;
}

/** Builds push wake over a shared PostgreSQL database. */
export function createSharedPushWake(deps: SharedPushWakeDeps): SharedPushWake {
  return new SharedPushWakeService(deps);
}

/**
 * The wake queue's rows in the shared database, for {@link WakeLoop}: due wakes are taken and due
 * pushes claimed under `FOR UPDATE SKIP LOCKED`, so each goes out from exactly one instance; other
 * instances change the queue, so the loop polls it.
 */
class PostgresWakeQueue implements WakeQueueStore {
  readonly #pool: pg.Pool;
  #pending = { wakes: 0, deliveries: 0 };

  constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  /** Turns due wakes into one delivery per channel; each wake is taken by exactly one instance. */
  releaseDueWakes(now: number, limit: number, decide: (wake: DueWake, online: boolean, window: WakeWindow | undefined) => WakeDecision): Promise<number> {
    return inTransaction(this.#pool, async (client) => {
      const wakes = (
        await client.query<{ owner: string; seq: number; queued_at: number }>(
          'SELECT owner, seq, queued_at FROM push_wakes WHERE due_at <= $1 ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED',
          [now, limit],
        )
      ).rows;
      for (const w of wakes) {
        const online = await isOnlineIn(client, w.owner, now);
        const win = online
          ? undefined
          : (
              await client.query<{ window_start: number; window_count: number }>('SELECT window_start, window_count FROM push_owners WHERE owner = $1', [
                w.owner,
              ])
            ).rows[0];
        const d = decide(
          { owner: w.owner, seq: w.seq, queuedAt: w.queued_at },
          online,
          win && { windowStart: win.window_start, windowCount: win.window_count },
        );
        if (d.kind === 'cancel') {
          await client.query('DELETE FROM push_wakes WHERE owner = $1', [w.owner]);
          continue;
        }
        if (d.kind === 'hold') {
          await client.query('UPDATE push_wakes SET due_at = $2 WHERE owner = $1', [w.owner, d.until]);
          continue;
        }
        await client.query(
          `INSERT INTO push_deliveries (owner, platform, token, seq, queued_at, attempts, due_at)
           SELECT owner, platform, token, $2, $3, 0, $4 FROM push_channels WHERE owner = $1
           ON CONFLICT (owner, platform, token) DO UPDATE SET seq = LEAST(push_deliveries.seq, excluded.seq), queued_at = GREATEST(push_deliveries.queued_at, excluded.queued_at)`,
          [w.owner, w.seq, w.queued_at, now],
        );
        await client.query('DELETE FROM push_wakes WHERE owner = $1', [w.owner]);
        await client.query('UPDATE push_owners SET last_wake_at = $2, window_start = $3, window_count = $4 WHERE owner = $1', [
          w.owner,
          now,
          d.window.windowStart,
          d.window.windowCount,
        ]);
      }
      return wakes.length;
    });
  }

  /**
   * Claims due pushes: rows another instance is claiming are skipped (SKIP LOCKED), and a claimed
   * row's due_at moves past the send's lease, so no other instance sends it unless this one dies.
   */
  async claimDue(now: number, room: number, leaseUntil: number): Promise<DuePush[]> {
    const rows = (
      await this.#pool.query<Omit<DeliveryRow, 'registered_at'>>(
        `WITH s AS (SELECT owner, platform, token FROM push_deliveries WHERE due_at <= $1 ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED),
         u AS (UPDATE push_deliveries d SET due_at = $3, attempts = d.attempts + 1 FROM s
               WHERE d.owner = s.owner AND d.platform = s.platform AND d.token = s.token RETURNING d.*)
         SELECT u.owner, u.platform, u.token, u.seq, u.queued_at, u.attempts - 1 AS attempts, c.topic, c.environment, c.mode
         FROM u LEFT JOIN push_channels c ON c.owner = u.owner AND c.platform = u.platform AND c.token = u.token`,
        [now, room, leaseUntil],
      )
    ).rows;
    return rows.map(readDuePush);
  }

  async unclaim(d: DuePush, at: number): Promise<void> {
    await this.#pool.query('UPDATE push_deliveries SET due_at = $4, attempts = attempts - 1 WHERE owner = $1 AND platform = $2 AND token = $3', [
      d.owner,
      d.platform,
      d.token,
      at,
    ]);
  }

  isOnline(owner: string, now: number): Promise<boolean> {
    return isOnlineIn(this.#pool, owner, now);
  }

  async deleteDelivery(d: DuePush): Promise<void> {
    await this.#pool.query('DELETE FROM push_deliveries WHERE owner = $1 AND platform = $2 AND token = $3', [d.owner, d.platform, d.token]);
  }

  async record(results: readonly PushResult[]): Promise<boolean[]> {
    const out: boolean[] = [];
    for (const r of results) {
      if (r.kind === 'schedule') {
        await this.#pool.query('UPDATE push_deliveries SET due_at = $4, attempts = $5 WHERE owner = $1 AND platform = $2 AND token = $3', [
          r.d.owner,
          r.d.platform,
          r.d.token,
          r.at,
          r.attempts,
        ]);
        out.push(false);
        continue;
      }
      let pruned = false;
      if (r.kind === 'prune') {
        const x = await this.#pool.query('DELETE FROM push_channels WHERE owner = $1 AND platform = $2 AND token = $3 AND registered_at < $4', [
          r.d.owner,
          r.d.platform,
          r.d.token,
          r.before,
        ]);
        pruned = (x.rowCount ?? 0) > 0;
      }
      await this.deleteDelivery(r.d);
      out.push(pruned);
    }
    return out;
  }

  nextDue(now: number): number {
    return now + PUMP_MS;
  }

  pending(): { wakes: number; deliveries: number } {
    return this.#pending;
  }

  async refreshPending(): Promise<void> {
    const c = (await this.#pool.query<{ w: number; d: number }>('SELECT (SELECT count(*) FROM push_wakes) AS w, (SELECT count(*) FROM push_deliveries) AS d'))
      .rows[0]!;
    this.#pending = { wakes: c.w, deliveries: c.d };
  }
}

/** Whether the agent has a live presence row on any instance. */
async function isOnlineIn(db: pg.Pool | pg.ClientBase, owner: string, now: number): Promise<boolean> {
  return (await db.query('SELECT 1 FROM presence WHERE pubkey = $1 AND expires_at > $2 LIMIT 1', [owner, now])).rows.length > 0;
}

class SharedPushWakeService implements SharedPushWake {
  readonly #pool: pg.Pool;
  readonly #log: Logger;
  readonly #keys: ConversationKeyCache;
  readonly #senders: WakeSenders;
  readonly #ownsSenders: boolean;
  readonly #configured: ReadonlySet<WakePlatform>;
  readonly #clock: PushClock;
  readonly #loop: WakeLoop;
  #closed = false;

  constructor(deps: SharedPushWakeDeps) {
    this.#pool = deps.pool;
    this.#log = deps.log.child({ module: 'push' });
    this.#keys = new ConversationKeyCache(deps.secretKey);
    this.#ownsSenders = deps.senders === undefined;
    this.#senders = deps.senders ?? createWakeSenders(deps.config, this.#log);
    this.#configured = new Set(getConfiguredPlatforms(this.#senders));
    this.#clock = deps.clock ?? systemClock;
    this.#loop = new WakeLoop({
      store: new PostgresWakeQueue(deps.pool),
      config: deps.config,
      log: this.#log,
      senders: this.#senders,
      clock: this.#clock,
      random: deps.random ?? Math.random,
      relayPubkey: deps.pubkey,
      passOnResult: false,
    });
  }

  async handleWakeRegistration(event: NostrEvent): Promise<WakeRegistrationResult> {
    try {
      const admitted = admitWakeRegistration(event, this.#keys, this.#configured, this.#log);
      if (!admitted.ok) return admitted;
      const { targets } = admitted;
      const now = this.#clock.now();
      const replaced = await inTransaction(this.#pool, async (client) => {
        // Registrations of one agent take turns across instances (the owner row is locked).
        await client.query('INSERT INTO push_owners (owner, event_created) VALUES ($1, 0) ON CONFLICT (owner) DO NOTHING', [event.pubkey]);
        const inForce = (await client.query<{ event_created: number }>('SELECT event_created FROM push_owners WHERE owner = $1 FOR UPDATE', [event.pubkey]))
          .rows[0]!.event_created;
        // Refused: the transaction changed nothing (the owner row it may insert already existed).
        if (inForce > 0 && event.created_at < inForce) return false;
        await client.query('UPDATE push_owners SET event_created = $2 WHERE owner = $1', [event.pubkey, event.created_at]);
        await client.query('DELETE FROM push_channels WHERE owner = $1', [event.pubkey]);
        for (const t of targets) {
          await client.query(
            `INSERT INTO push_channels (owner, platform, token, topic, environment, mode, registered_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (owner, platform, token) DO UPDATE SET topic = excluded.topic, environment = excluded.environment, mode = excluded.mode, registered_at = excluded.registered_at`,
            [event.pubkey, t.platform, t.token, t.topic ?? '', t.environment ?? '', t.mode, now],
          );
        }
        if (targets.length === 0) await client.query('DELETE FROM push_deliveries WHERE owner = $1', [event.pubkey]);
        return true;
      });
      if (!replaced) return { ok: false, reason: makeReason('invalid', 'a newer wake registration is already in force') };
      this.#log.info({ event: event.id, agent: event.pubkey, channels: targets.length }, 'wake registration');
      return { ok: true };
    } catch (err) {
      this.#log.error({ err, event: event.id }, 'wake registration failed');
      return { ok: false, reason: makeReason('error', 'internal error') };
    }
  }

  start(): void {
    if (this.#closed) return;
    // The first pass at the first timer, then every PUMP_MS: other instances queue wakes too.
    this.#loop.start(true);
  }

  runDue(): Promise<void> {
    return this.#loop.runDue();
  }

  stats(): PushStats {
    return this.#loop.stats();
  }

  describeWake(): WakeDescription {
    return describeWake(this.#senders);
  }

  enabled(): boolean {
    return this.#configured.size > 0;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#loop.close();
    if (this.#ownsSenders) await Promise.all([this.#senders.apns?.close(), this.#senders.fcm?.close()]);
  }
}
