import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { RelayStats } from '../context.js';
import type { Figures, FigureSampler } from '../operator/figures.js';
import { LATENCY_BUCKETS } from '../operator/latency.js';

/** Settings of the /metrics endpoint. */
export interface MetricsOptions {
  sampler: FigureSampler;
  stats: RelayStats;
  version: string;
  /** Bearer token required to scrape; empty leaves the endpoint open. */
  token: string;
  /** Process metrics (CPU, memory, event loop lag); off in tests that build many relays. */
  processMetrics?: boolean;
}

/** Constant-time comparison of two secrets. */
export function secretsEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

const snake = (k: string) => k.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());
const WAKE_COUNTERS = new Set(['queued', 'sent', 'failed', 'pruned', 'retried', 'cancelled', 'rateLimited']);

/**
 * Builds the relay's Prometheus registry: the dashboard's figures as counters and gauges, latency
 * histograms (EVENT → OK, REQ → EOSE), and optionally the process metrics. One registry per relay,
 * so relays built side by side in tests do not share series.
 */
export function createMetricsRegistry(opts: MetricsOptions): RelayMetrics {
  const registry = new Registry();
  if (opts.processMetrics !== false) collectDefaultMetrics({ register: registry });
  // One snapshot per scrape, shared by every collector of that scrape.
  let current: Figures | undefined;
  const figures = () => (current ??= opts.sampler.snapshot());
  const registers = [registry];

  new Gauge({ name: 'roost_info', help: 'Relay build information.', labelNames: ['version'], registers }).set({ version: opts.version }, 1);

  const total = (name: string, help: string, read: (f: Figures) => number) =>
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset();
        this.inc(read(figures()));
      },
    });
  const gauge = (name: string, help: string, read: (f: Figures) => number | undefined) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        const v = read(figures());
        if (v !== undefined) this.set(v);
      },
    });

  total('roost_connections_opened_total', 'WebSocket connections accepted.', (f) => f.totals.connectionsOpened);
  total('roost_events_received_total', 'EVENT messages received.', (f) => f.totals.eventsReceived);
  total('roost_events_stored_total', 'Events committed to the database.', (f) => f.totals.eventsStored);
  total('roost_events_ephemeral_total', 'Ephemeral events delivered live only.', (f) => f.totals.eventsEphemeral);
  total('roost_events_duplicate_total', 'Events already stored.', (f) => f.totals.eventsDuplicate);
  total('roost_events_rejected_total', 'Events answered OK false.', (f) => f.totals.eventsRejected);
  total('roost_reqs_total', 'REQ messages received.', (f) => f.totals.reqs);
  total('roost_counts_total', 'COUNT messages received.', (f) => f.totals.counts);
  total('roost_deliveries_total', 'Live EVENT frames sent to subscriptions.', (f) => f.totals.deliveries);
  total('roost_slow_clients_cut_total', 'Connections cut off at the outbound byte cap.', (f) => f.totals.slowClientsCut);
  total('roost_errors_total', 'Internal failures (answered error: internal error).', (f) => f.totals.errors);
  new Counter({
    name: 'roost_rejections_total',
    help: 'Refusals (OK false, CLOSED, NOTICE, refused connections) by NIP-01 reason prefix.',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset();
      for (const [reason, n] of Object.entries(figures().rejections)) this.inc({ reason }, n);
    },
  });

  new Counter({
    name: 'roost_replication_refused_total',
    help: "Replicated events refused by this relay's own policies or store rules, by NIP-01 reason prefix (the cursor moves past them).",
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset();
      for (const [reason, n] of opts.stats.replicationRefused) this.inc({ reason }, n);
    },
  });
  new Counter({
    name: 'roost_replication_duplicates_total',
    help: 'Replicated events already stored here (dropped after one lookup: no verification, no write).',
    registers,
    collect() {
      this.reset();
      this.inc(opts.stats.replicationDuplicates);
    },
  });

  new Counter({
    name: 'roost_client_mistakes_total',
    help: 'Client mistakes by kind: oversized frames, WebSocket protocol violations, resets, binary, invalid UTF-8, malformed messages.',
    labelNames: ['kind'],
    registers,
    collect() {
      this.reset();
      for (const [kind, n] of opts.stats.clientMistakes) this.inc({ kind }, n);
    },
  });

  gauge('roost_connections', 'Open WebSocket connections.', (f) => f.connections);
  gauge('roost_agents_online', 'Distinct pubkeys authenticated (NIP-42) on open connections.', (f) => f.agentsOnline);
  gauge('roost_subscriptions', 'Open subscriptions.', (f) => f.subscriptions);
  gauge('roost_stored_events', 'Events in the database (refreshed every few seconds).', (f) => f.storage?.events);
  gauge('roost_database_bytes', 'Size of the database file.', (f) => f.storage?.bytes);
  gauge('roost_database_wal_bytes', 'Size of the write-ahead log.', (f) => f.storage?.walBytes);
  gauge('roost_uptime_seconds', 'Seconds since the relay was built.', (f) => f.relay.uptimeSeconds);
  new Gauge({
    name: 'roost_moderation_entries',
    help: 'Entries of the NIP-86 moderation lists.',
    labelNames: ['list'],
    registers,
    collect() {
      this.reset();
      for (const [list, n] of Object.entries(figures().moderation)) this.set({ list: snake(list) }, n);
    },
  });

  // Subsystem sections: present only when the subsystem is wired in.
  const sectionSeries = new Map<string, Gauge | Counter>();
  const sectionMetric = (prefix: 'mailbox' | 'wake', key: string) => {
    const isCounter = prefix === 'wake' && WAKE_COUNTERS.has(key);
    const name = `roost_${prefix}_${snake(key)}${isCounter ? '_total' : ''}`;
    let m = sectionSeries.get(name);
    if (!m) {
      const help = `${prefix === 'wake' ? 'Wake queue' : 'Mailbox'}: ${key}.`;
      m = isCounter ? new Counter({ name, help, registers }) : new Gauge({ name, help, registers });
      sectionSeries.set(name, m);
    }
    return m;
  };
  const enabled = new Gauge({
    name: 'roost_section_enabled',
    help: 'Whether an optional subsystem (mailbox, wake) reports figures.',
    labelNames: ['section'],
    registers,
  });
  // Run before each scrape, not in a collect(): a series registered during a scrape would miss it.
  const syncSections = () => {
    const f = figures();
    for (const name of ['mailbox', 'wake'] as const) {
      const sec = f[name];
      enabled.set({ section: name }, sec.enabled ? 1 : 0);
      if (!sec.enabled || !('figures' in sec)) continue;
      for (const [k, v] of Object.entries(sec.figures)) {
        if (typeof v !== 'number') continue;
        const m = sectionMetric(name, k);
        if (m instanceof Counter) {
          m.reset();
          m.inc(v);
        } else m.set(v);
      }
    }
  };

  const ok = new Histogram({ name: 'roost_ok_latency_seconds', help: 'Time from an EVENT to its OK.', buckets: [...LATENCY_BUCKETS], registers });
  const eose = new Histogram({ name: 'roost_req_eose_latency_seconds', help: 'Time from a REQ to its EOSE.', buckets: [...LATENCY_BUCKETS], registers });
  opts.stats.onLatency.push((kind, seconds) => (kind === 'ok' ? ok : eose).observe(seconds));
  return {
    registry,
    async render() {
      current = undefined;
      try {
        syncSections();
        return await registry.metrics();
      } finally {
        current = undefined;
      }
    },
  };
}

/** A relay's metrics: the registry and its text rendering. */
export interface RelayMetrics {
  registry: Registry;
  /** The Prometheus text exposition, with the optional sections brought up to date. */
  render(): Promise<string>;
}

/** Serves GET /metrics in the Prometheus text format. */
export function registerMetrics(app: FastifyInstance, metrics: RelayMetrics, token: string): void {
  app.get('/metrics', async (req, reply) => {
    if (token) {
      const given = /^Bearer\s+(.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
      if (!secretsEqual(given, token)) return reply.code(401).header('www-authenticate', 'Bearer').send('unauthorized\n');
    }
    reply.type(metrics.registry.contentType);
    return metrics.render();
  });
}
