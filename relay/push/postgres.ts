import { createHash, randomBytes } from 'node:crypto';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { NostrEvent } from '../../shared/event.js';
import { makeReason } from '../../shared/reason.js';
import { parsePublicUrls } from '../relay-url.js';
import { getRetryDelay, TokenBucket } from './backoff.js';
import { admitWakeRegistration, ConversationKeyCache, type WakeRegistrationResult } from './registration.js';
import { createWakeSenders, describeWake, getConfiguredPlatforms, type WakeDescription } from './senders.js';
import { inTransaction } from '../store/postgres-transaction.js';
import type { DeliveryRow } from './store.js';
import type { PushStats, PushWakeConfig } from './wake.js';
import { systemClock, type PushClock, type SendOutcome, type WakeHint, type WakePlatform, type WakeSenders, type WakeTarget } from './types.js';

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

interface Claimed {
  owner: string;
  platform: WakePlatform;
  token: string;
  seq: number;
  queuedAt: number;
  attempts: number;
  target: WakeTarget | undefined;
}

const HOUR_MS = 3_600_000;
const RELEASE_BATCH = 256;
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

class SharedPushWakeService implements SharedPushWake {
  readonly #pool: pg.Pool;
  readonly #config: PushWakeConfig;
  readonly #log: Logger;
  readonly #keys: ConversationKeyCache;
  readonly #pubkey: string;
  readonly #senders: WakeSenders;
  readonly #ownsSenders: boolean;
  readonly #configured: ReadonlySet<WakePlatform>;
  readonly #clock: PushClock;
  readonly #random: () => number;
  readonly #bucket: TokenBucket;
  readonly #leaseMs: number;
  readonly #inFlight = new Map<string, Promise<void>>();
  readonly #counters = { queued: 0, sent: 0, retried: 0, failed: 0, pruned: 0, cancelled: 0, rateLimited: 0 };
  #pending = { wakes: 0, deliveries: 0 };
  #pumping: Promise<void> | undefined;
  #timer: (() => void) | undefined;
  #started = false;
  #closed = false;

  constructor(deps: SharedPushWakeDeps) {
    this.#pool = deps.pool;
    this.#config = deps.config;
    this.#log = deps.log.child({ module: 'push' });
    this.#keys = new ConversationKeyCache(deps.secretKey);
    this.#pubkey = deps.pubkey;
    this.#ownsSenders = deps.senders === undefined;
    this.#senders = deps.senders ?? createWakeSenders(deps.config, this.#log);
    this.#configured = new Set(getConfiguredPlatforms(this.#senders));
    this.#clock = deps.clock ?? systemClock;
    this.#random = deps.random ?? Math.random;
    this.#bucket = new TokenBucket(deps.config.pushGlobalSendsPerSecond, this.#clock.now());
    this.#leaseMs = 2 * Math.max(deps.config.pushRequestTimeoutMs, 15_000);
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
    if (this.#started || this.#closed) return;
    this.#started = true;
    this.#schedule(0);
  }

  #schedule(ms: number): void {
    if (!this.#started || this.#closed) return;
    this.#timer?.();
    this.#timer = this.#clock.setTimer(() => {
      this.#timer = undefined;
      void this.#pump().finally(() => this.#schedule(PUMP_MS));
    }, ms);
  }

  /** One pass: release due wakes, claim due pushes up to the caps, start them. Single flight. */
  #pump(): Promise<void> {
    this.#pumping ??= this.#pass()
      .catch((err) => {
        if (!this.#closed) this.#log.error({ err }, 'push queue pass failed');
      })
      .finally(() => (this.#pumping = undefined));
    return this.#pumping;
  }

  async #pass(): Promise<void> {
    if (this.#closed) return;
    const now = this.#clock.now();
    await this.#releaseDueWakes(now);
    const room = this.#config.pushMaxInFlight - this.#inFlight.size;
    if (room > 0) {
      for (const d of await this.#claim(now, room)) {
        if (!(await this.#isSendable(d, now))) continue;
        if (!this.#bucket.take(now)) {
          // Over the global rate: give the claim back for the next pass.
          await this.#pool.query('UPDATE push_deliveries SET due_at = $4, attempts = attempts - 1 WHERE owner = $1 AND platform = $2 AND token = $3', [
            d.owner,
            d.platform,
            d.token,
            now + this.#bucket.waitMs(now),
          ]);
          continue;
        }
        this.#startSend(d, now);
      }
    }
    const c = (await this.#pool.query<{ w: number; d: number }>('SELECT (SELECT count(*) FROM push_wakes) AS w, (SELECT count(*) FROM push_deliveries) AS d'))
      .rows[0]!;
    this.#pending = { wakes: c.w, deliveries: c.d };
  }

  /** Turns due wakes into one delivery per channel; each wake is taken by exactly one instance. */
  async #releaseDueWakes(now: number): Promise<void> {
    for (;;) {
      const n = await inTransaction(this.#pool, async (client) => {
        const wakes = (
          await client.query<{ owner: string; seq: number; queued_at: number }>(
            'SELECT owner, seq, queued_at FROM push_wakes WHERE due_at <= $1 ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED',
            [now, RELEASE_BATCH],
          )
        ).rows;
        for (const w of wakes) {
          if (await this.#isOnline(client, w.owner, now)) {
            await client.query('DELETE FROM push_wakes WHERE owner = $1', [w.owner]);
            this.#counters.cancelled++;
            continue;
          }
          const win = (
            await client.query<{ window_start: number; window_count: number }>('SELECT window_start, window_count FROM push_owners WHERE owner = $1', [w.owner])
          ).rows[0] ?? { window_start: 0, window_count: 0 };
          let windowStart = win.window_start;
          let windowCount = win.window_count;
          if (now - windowStart >= HOUR_MS) {
            windowStart = now;
            windowCount = 0;
          }
          if (windowCount >= this.#config.pushAgentWakesPerHour) {
            await client.query('UPDATE push_wakes SET due_at = $2 WHERE owner = $1', [w.owner, windowStart + HOUR_MS]);
            this.#counters.rateLimited++;
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
            windowStart,
            windowCount + 1,
          ]);
        }
        return wakes.length;
      });
      if (n < RELEASE_BATCH) return;
    }
  }

  async #isOnline(client: pg.ClientBase, owner: string, now: number): Promise<boolean> {
    return (await client.query('SELECT 1 FROM presence WHERE pubkey = $1 AND expires_at > $2 LIMIT 1', [owner, now])).rows.length > 0;
  }

  /**
   * Claims due pushes: rows another instance is claiming are skipped (SKIP LOCKED), and a claimed
   * row's due_at moves past the send's lease, so no other instance sends it unless this one dies.
   */
  async #claim(now: number, room: number): Promise<Claimed[]> {
    const rows = (
      await this.#pool.query<Omit<DeliveryRow, 'registered_at'>>(
        `WITH s AS (SELECT owner, platform, token FROM push_deliveries WHERE due_at <= $1 ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED),
         u AS (UPDATE push_deliveries d SET due_at = $3, attempts = d.attempts + 1 FROM s
               WHERE d.owner = s.owner AND d.platform = s.platform AND d.token = s.token RETURNING d.*)
         SELECT u.owner, u.platform, u.token, u.seq, u.queued_at, u.attempts - 1 AS attempts, c.topic, c.environment, c.mode
         FROM u LEFT JOIN push_channels c ON c.owner = u.owner AND c.platform = u.platform AND c.token = u.token`,
        [now, room, now + this.#leaseMs],
      )
    ).rows;
    return rows.map((r) => ({
      owner: r.owner,
      platform: r.platform,
      token: r.token,
      seq: r.seq,
      queuedAt: r.queued_at,
      attempts: r.attempts,
      target: r.mode === null ? undefined : { platform: r.platform, token: r.token, topic: r.topic ?? '', environment: r.environment ?? '', mode: r.mode },
    }));
  }

  async #isSendable(d: Claimed, now: number): Promise<boolean> {
    let why: 'removed' | 'online' | 'expired' | 'unconfigured' | undefined;
    if (!d.target) why = 'removed';
    else if ((await this.#pool.query('SELECT 1 FROM presence WHERE pubkey = $1 AND expires_at > $2 LIMIT 1', [d.owner, now])).rows.length > 0) why = 'online';
    else if (now >= d.queuedAt + this.#config.pushWakeTtlSeconds * 1000) why = 'expired';
    else if (!this.#senders[d.platform]) why = 'unconfigured';
    if (!why) return true;
    await this.#deleteDelivery(d);
    if (why === 'removed' || why === 'online') this.#counters.cancelled++;
    else this.#counters.failed++;
    this.#log.info({ agent: d.owner, platform: d.platform, why }, 'wake dropped');
    return false;
  }

  #deleteDelivery(d: Pick<Claimed, 'owner' | 'platform' | 'token'>): Promise<unknown> {
    return this.#pool.query('DELETE FROM push_deliveries WHERE owner = $1 AND platform = $2 AND token = $3', [d.owner, d.platform, d.token]);
  }

  #startSend(d: Claimed, now: number): void {
    const attempt = d.attempts + 1;
    const expiresAtMs = d.queuedAt + this.#config.pushWakeTtlSeconds * 1000;
    const hint: WakeHint = {
      relay: parsePublicUrls(this.#config.publicUrl)[0] ?? '',
      seq: d.seq,
      collapseId: `roost-${createHash('sha256').update(`${this.#pubkey}\n${this.#config.publicUrl}\n${d.owner}`).digest('hex').slice(0, 32)}`,
      expiresAt: Math.floor(expiresAtMs / 1000),
      ttlSeconds: Math.max(0, Math.floor((expiresAtMs - now) / 1000)),
    };
    const key = `${d.owner}\u0000${d.platform}\u0000${d.token}`;
    const p = this.#senders[d.platform]!.send(d.target!, hint)
      .catch((): SendOutcome => ({ kind: 'retry', code: 'sender:exception' }))
      .then((outcome) => this.#settle(d, attempt, outcome, this.#clock.now()))
      .catch((err) => this.#log.error({ err }, 'recording a push result failed (the lease makes it retried)'))
      .finally(() => this.#inFlight.delete(key));
    this.#inFlight.set(key, p);
  }

  async #settle(d: Claimed, attempt: number, outcome: SendOutcome, now: number): Promise<void> {
    const base = { agent: d.owner, platform: d.platform, attempt };
    switch (outcome.kind) {
      case 'sent':
        await this.#deleteDelivery(d);
        this.#counters.sent++;
        this.#log.info({ ...base, seq: d.seq }, 'wake sent');
        return;
      case 'retry': {
        const delay = getRetryDelay(attempt, { baseMs: this.#config.pushRetryBaseMs, maxMs: this.#config.pushRetryMaxMs }, this.#random, outcome.retryAfterMs);
        if (attempt >= this.#config.pushMaxAttempts || now + delay >= d.queuedAt + this.#config.pushWakeTtlSeconds * 1000) {
          await this.#deleteDelivery(d);
          this.#counters.failed++;
          this.#log.warn({ ...base, code: outcome.code }, 'wake given up');
          return;
        }
        await this.#pool.query('UPDATE push_deliveries SET due_at = $4, attempts = $5 WHERE owner = $1 AND platform = $2 AND token = $3', [
          d.owner,
          d.platform,
          d.token,
          now + delay,
          attempt,
        ]);
        this.#counters.retried++;
        return;
      }
      case 'prune': {
        const r = await this.#pool.query('DELETE FROM push_channels WHERE owner = $1 AND platform = $2 AND token = $3 AND registered_at < $4', [
          d.owner,
          d.platform,
          d.token,
          outcome.unregisteredAt ?? Number.MAX_SAFE_INTEGER,
        ]);
        await this.#deleteDelivery(d);
        if ((r.rowCount ?? 0) > 0) this.#counters.pruned++;
        else this.#counters.failed++;
        return;
      }
      case 'reject':
        await this.#deleteDelivery(d);
        this.#counters.failed++;
        this.#log.warn({ ...base, code: outcome.code }, 'wake refused by the push service');
        return;
    }
  }

  async runDue(): Promise<void> {
    for (;;) {
      await this.#pump();
      if (this.#inFlight.size === 0) return;
      await Promise.all(this.#inFlight.values());
    }
  }

  stats(): PushStats {
    return { ...this.#counters, pendingWakes: this.#pending.wakes, pendingDeliveries: this.#pending.deliveries, inFlight: this.#inFlight.size };
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
    this.#timer?.();
    await this.#pumping;
    await Promise.all(this.#inFlight.values());
    if (this.#ownsSenders) await Promise.all([this.#senders.apns?.close(), this.#senders.fcm?.close()]);
  }
}
