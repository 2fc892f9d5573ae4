import { statSync } from 'node:fs';
import type { Database } from 'better-sqlite3';
import type { Connection } from '../connection.js';
import type { RecentError, RelayStats } from '../context.js';
import { LatencyHistogram } from './latency.js';

/** Undelivered mail, from the mailbox subsystem. */
export interface MailboxFigures {
  /** Stored events addressed to agents that have not been delivered to them yet. */
  undelivered: number;
  /** Agents with undelivered mail. */
  agents?: number;
  /** Age in seconds of the oldest undelivered event. */
  oldestSeconds?: number;
}

/** The wake queue, from the push subsystem (its stats object fits as is). */
export interface WakeFigures {
  queued: number;
  sent: number;
  failed: number;
  pruned: number;
  retried?: number;
  pendingWakes?: number;
  pendingDeliveries?: number;
  inFlight?: number;
}

/**
 * Figures of subsystems built apart from the core. Each section is optional: an absent one is
 * shown as "not enabled" on the dashboard and left out of /metrics. Called about once a second.
 */
export interface DashboardSource {
  mailbox?: () => MailboxFigures;
  wake?: () => WakeFigures;
}

/** Size of the database on disk. */
export interface StorageFigures {
  /** Stored events (refreshed every few seconds: counting is a scan). */
  events: number;
  /** Main database file, in bytes (page count × page size). */
  bytes: number;
  /** Write-ahead log, in bytes. */
  walBytes: number;
}

/** A section that may be off or failing. */
export type Section<T> = { enabled: false } | { enabled: true; figures: T } | { enabled: true; error: string };

/** Everything the dashboard shows at one instant. */
export interface Figures {
  /** Milliseconds since the epoch. */
  at: number;
  relay: { name: string; version: string; uptimeSeconds: number; writePolicy: string };
  connections: number;
  agentsOnline: number;
  subscriptions: number;
  totals: {
    eventsReceived: number;
    eventsStored: number;
    eventsEphemeral: number;
    eventsDuplicate: number;
    eventsRejected: number;
    reqs: number;
    counts: number;
    deliveries: number;
    connectionsOpened: number;
    slowClientsCut: number;
    errors: number;
  };
  /** Per second, over the last sampling interval. */
  rates: { received: number; stored: number; delivered: number; reqs: number; rejected: number };
  storage: StorageFigures | undefined;
  rejections: Record<string, number>;
  /** Milliseconds, over the last ten seconds; undefined when nothing was measured. */
  latency: { okP50?: number; okP99?: number; eoseP50?: number; eoseP99?: number; okCount: number; eoseCount: number };
  moderation: Record<string, number>;
  mailbox: Section<MailboxFigures>;
  wake: Section<WakeFigures>;
  recentErrors: RecentError[];
}

/** One point of the live chart. */
export interface RatePoint {
  at: number;
  received: number;
  stored: number;
  delivered: number;
}

/**
 * Reads the database's size and event count. Counting is a scan: while it is cheap (under a
 * millisecond) it is fresh on every read; once it is not, it is refreshed every `countTtlMs`.
 */
export function createStorageProbe(db: Database, path: string, nowMs: () => number, countTtlMs = 5000): () => StorageFigures {
  const countStmt = db.prepare('SELECT COUNT(*) FROM events').pluck();
  let events = 0;
  let countedAt = -Infinity;
  let countMs = 0;
  return () => {
    const now = nowMs();
    if (countMs < 1 || now - countedAt >= countTtlMs) {
      const t0 = performance.now();
      events = countStmt.get() as number;
      countMs = performance.now() - t0;
      countedAt = now;
    }
    const pages = db.pragma('page_count', { simple: true }) as number;
    const pageSize = db.pragma('page_size', { simple: true }) as number;
    let walBytes = 0;
    if (path !== ':memory:') {
      try {
        walBytes = statSync(`${path}-wal`).size;
      } catch {
        walBytes = 0;
      }
    }
    return { events, bytes: pages * pageSize, walBytes };
  };
}

/** What the sampler reads. */
export interface SamplerDeps {
  stats: RelayStats;
  connections: ReadonlySet<Connection>;
  storage?: () => StorageFigures;
  sources: DashboardSource;
  moderation?: () => Record<string, number>;
  relay: () => { name: string; version: string; writePolicy: string };
  /** Milliseconds since the epoch. */
  nowMs: () => number;
}

const HISTORY_POINTS = 180;
const LATENCY_WINDOW = 10;

function section<T>(fn: (() => T) | undefined): Section<T> {
  if (!fn) return { enabled: false };
  try {
    return { enabled: true, figures: fn() };
  } catch (err) {
    return { enabled: true, error: (err as Error).message ?? String(err) };
  }
}

const toMs = (s: number | undefined) => (s === undefined ? undefined : Number.isFinite(s) ? s * 1000 : 1e6);

/**
 * Samples the relay's figures about once a second: totals, per-second rates, a rolling history for
 * the chart, windowed latency quantiles, and the subsystem sections. Listeners get each sample.
 */
export class FigureSampler {
  readonly ok = new LatencyHistogram();
  readonly eose = new LatencyHistogram();
  readonly #deps: SamplerDeps;
  readonly #startedAt: number;
  readonly #history: RatePoint[] = [];
  readonly #latencyMarks: Array<{ ok: number[]; eose: number[] }> = [];
  readonly #listeners = new Set<(f: Figures, p: RatePoint) => void>();
  #last: { at: number; received: number; stored: number; delivered: number; reqs: number; rejected: number };
  #latest: Figures | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(deps: SamplerDeps) {
    this.#deps = deps;
    this.#startedAt = deps.nowMs();
    this.#last = { at: this.#startedAt, ...this.#counters() };
  }

  #counters() {
    const s = this.#deps.stats;
    return { received: s.eventsReceived, stored: s.eventsStored, delivered: s.deliveries, reqs: s.reqs + s.counts, rejected: s.eventsRejected };
  }

  /** Starts sampling every `intervalMs` (the timer does not keep the process alive). */
  start(intervalMs = 1000): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.tick(), intervalMs);
    this.#timer.unref();
  }

  /** Stops sampling and forgets the listeners. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#listeners.clear();
  }

  /** Takes one sample now, updates the history and tells the listeners. */
  tick(): Figures {
    const now = this.#deps.nowMs();
    const c = this.#counters();
    const dt = Math.max(0.001, (now - this.#last.at) / 1000);
    const rate = (k: keyof typeof c) => Math.max(0, (c[k] - this.#last[k]) / dt);
    const rates = { received: rate('received'), stored: rate('stored'), delivered: rate('delivered'), reqs: rate('reqs'), rejected: rate('rejected') };
    this.#last = { at: now, ...c };
    const point: RatePoint = { at: now, received: rates.received, stored: rates.stored, delivered: rates.delivered };
    this.#history.push(point);
    if (this.#history.length > HISTORY_POINTS) this.#history.shift();
    this.#latencyMarks.push({ ok: this.ok.counts(), eose: this.eose.counts() });
    if (this.#latencyMarks.length > LATENCY_WINDOW + 1) this.#latencyMarks.shift();
    const f = this.snapshot(rates);
    this.#latest = f;
    for (const fn of this.#listeners) fn(f, point);
    return f;
  }

  /** The figures now (rates from the last sample unless given). */
  snapshot(rates?: Figures['rates']): Figures {
    const d = this.#deps;
    const s = d.stats;
    const now = d.nowMs();
    const agents = new Set<string>();
    let subscriptions = 0;
    for (const conn of d.connections) {
      for (const pk of conn.authed) agents.add(pk);
      subscriptions += conn.subs.size;
    }
    const since = this.#latencyMarks[0];
    return {
      at: now,
      relay: { ...d.relay(), uptimeSeconds: Math.round((now - this.#startedAt) / 1000) },
      connections: d.connections.size,
      agentsOnline: agents.size,
      subscriptions,
      totals: {
        eventsReceived: s.eventsReceived,
        eventsStored: s.eventsStored,
        eventsEphemeral: s.eventsEphemeral,
        eventsDuplicate: s.eventsDuplicate,
        eventsRejected: s.eventsRejected,
        reqs: s.reqs,
        counts: s.counts,
        deliveries: s.deliveries,
        connectionsOpened: s.connectionsOpened,
        slowClientsCut: s.slowClientsCut,
        errors: s.errors,
      },
      rates: rates ?? this.#latest?.rates ?? { received: 0, stored: 0, delivered: 0, reqs: 0, rejected: 0 },
      storage: d.storage?.(),
      rejections: Object.fromEntries(s.rejections),
      latency: {
        okP50: toMs(this.ok.quantile(0.5, since?.ok)),
        okP99: toMs(this.ok.quantile(0.99, since?.ok)),
        eoseP50: toMs(this.eose.quantile(0.5, since?.eose)),
        eoseP99: toMs(this.eose.quantile(0.99, since?.eose)),
        okCount: this.ok.countSince(since?.ok),
        eoseCount: this.eose.countSince(since?.eose),
      },
      moderation: d.moderation?.() ?? {},
      mailbox: section(d.sources.mailbox),
      wake: section(d.sources.wake),
      recentErrors: [...s.recentErrors],
    };
  }

  /** The latest sample (taking one if none was taken yet). */
  latest(): Figures {
    return this.#latest ?? this.tick();
  }

  /** The chart's rolling history, oldest first. */
  history(): RatePoint[] {
    return [...this.#history];
  }

  /** Calls `fn` with every new sample; returns the unsubscribe function. */
  subscribe(fn: (f: Figures, p: RatePoint) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }
}
