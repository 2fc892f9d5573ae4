import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { decode as decodeNip19 } from 'nostr-tools/nip19';
import { RoostError, type RelayConfig } from '../config.js';
import { countRejection, type RelayContext } from '../context.js';
import { AdminStore } from '../admin/store.js';
import { applyManagementChange } from '../admin/nip86.js';
import { registerDashboard } from '../plugins/dashboard.js';
import { createSqliteReadiness, registerHealth, type ReadinessCheck } from '../plugins/health.js';
import { createMetricsRegistry, registerMetrics, type RelayMetrics } from '../plugins/metrics.js';
import type { InfoContributor } from '../plugins/nip11.js';
import { registerHttpLimits } from '../plugins/http-limits.js';
import { registerNip86 } from '../plugins/nip86.js';
import { rejectBannedEvents, rejectBannedPubkeys, rejectByWritePolicy, rejectDisallowedKinds } from '../policies/moderation.js';
import { RateLimiter, normalizeIp, rejectEventRate, rejectFilterRate, type MakeRateBuckets, type RateLimits } from '../policies/rate-limit.js';
import { openDatabase } from '../store/sqlite.js';
import { verifyEventSync } from '../verify/index.js';
import { FigureSampler, createStorageProbe, type DashboardSource } from './figures.js';
import { createDashboardTraces } from './traces.js';

export type { DashboardSource, MailboxFigures, WakeFigures, Figures } from './figures.js';

/** What the operator layer is installed into. */
export interface OperatorDeps {
  app: FastifyInstance;
  ctx: RelayContext;
  infoContributors: InfoContributor[];
  version: string;
  log: Logger;
  /** Milliseconds since the epoch (rate limits, sampling). */
  nowMs: () => number;
  /** Prometheus process metrics (default on). */
  processMetrics?: boolean;
  /** Makes the rate limiter's buckets (a cluster: budgets shared by every instance); local token buckets by default. */
  makeRateBuckets?: MakeRateBuckets;
}

/** A WebSocket upgrade the connection gate refuses, answered in plain HTTP. */
export interface UpgradeRefusal {
  status: 403 | 429;
  /** Plain text, ending in a newline. */
  body: string;
  /** Seconds, for a rate limit's `Retry-After`. */
  retryAfter?: string;
}

/** The operator layer of a relay: moderation, limits, metrics, health and the dashboard. */
export interface Operator {
  /** Subsystems register their dashboard and metrics figures here (mailbox, wake). */
  readonly sources: DashboardSource;
  readonly admin: AdminStore;
  readonly limiter: RateLimiter | undefined;
  readonly sampler: FigureSampler;
  readonly metrics: RelayMetrics;
  readonly admins: ReadonlySet<string>;
  readonly ready: ReadinessCheck;
  /** The connection gate: blocked addresses (403) and the per-IP connection rate (429), before any upgrade. */
  admitUpgrade(ip: string): UpgradeRefusal | undefined;
  /** Marks the relay as shutting down (/ready answers 503) and ends the dashboard streams. */
  beginClose(): void;
  /** Stops the sampler. */
  close(): void;
}

/** Admin pubkeys from the configuration (hex or npub), as hex. */
export function parseAdminPubkeys(list: string): Set<string> {
  const out = new Set<string>();
  for (const item of list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    if (/^[0-9a-f]{64}$/.test(item)) {
      out.add(item);
      continue;
    }
    try {
      const d = decodeNip19(item);
      if (d.type !== 'npub') throw new Error(d.type);
      out.add(d.data);
    } catch {
      throw new RoostError('ROOST_ERR_CONFIG', `invalid configuration: adminPubkeys: ${item.slice(0, 12)}… is not a valid npub`);
    }
  }
  return out;
}

/** The fastify `trustProxy` option from its configuration string. */
export function getTrustProxy(value: string): boolean | string | ((address: string, hop: number) => boolean) {
  const v = value.trim();
  if (v === 'true') return true;
  if (v === 'false' || v === '') return false;
  if (/^\d+$/.test(v)) {
    const hops = Number(v);
    return (_address, hop) => hop < hops;
  }
  return v;
}

/** The rate limits in force (all off when the master switch is). */
export function getRateLimits(config: RelayConfig): RateLimits | undefined {
  if (!config.rateLimit) return undefined;
  const limits = {
    connectionsPerIp: config.rateConnectionsPerIp,
    connectionsPerLoopback: config.rateConnectionsPerLoopback,
    eventsPerIp: config.rateEventsPerIp,
    eventsPerPubkey: config.rateEventsPerPubkey,
    reqsPerIp: config.rateReqsPerIp,
    reqsPerPubkey: config.rateReqsPerPubkey,
    httpPerIp: config.rateHttpPerIp,
  };
  return Object.values(limits).some((n) => n > 0) ? limits : undefined;
}

/**
 * Installs the operator layer into a built relay: moderation and write-policy hooks plus rate limits
 * (prepended to the policy lists, so they run first), the connection gate, the NIP-86 endpoint,
 * NIP-11 fields, /metrics, /health, /ready and /dashboard.
 */
export function installOperator(deps: OperatorDeps): Operator {
  const { app, ctx, log } = deps;
  const config = ctx.config;
  const admins = parseAdminPubkeys(config.adminPubkeys);
  const { local, adminDb } = ctx.store.provides;
  const db = adminDb ?? openDatabase(':memory:');
  const admin = new AdminStore(db, () => ctx.now());
  const limits = getRateLimits(config);
  const limiter = limits ? new RateLimiter(limits, deps.nowMs, deps.makeRateBuckets) : undefined;

  const writePolicy = rejectByWritePolicy(config.writePolicy, admin, admins);
  ctx.hooks.rejectEvent.unshift(
    ...(limiter ? [rejectEventRate(limiter)] : []),
    rejectBannedEvents(admin),
    rejectBannedPubkeys(admin),
    ...(writePolicy ? [writePolicy] : []),
    rejectDisallowedKinds(admin),
  );
  if (limiter) {
    ctx.hooks.rejectFilter.unshift(rejectFilterRate(limiter));
    ctx.hooks.onEventUnproven.push((ev) => limiter.releaseAuthor(ev));
  }

  // The connection gate runs before the WebSocket upgrade: a refused client gets a plain HTTP answer. The
  // relay's own upgrade path (relay/upgrade.ts) calls it directly; this hook covers upgrades fastify routes.
  const admitUpgrade = (address: string): UpgradeRefusal | undefined => {
    const ip = normalizeIp(address);
    if (admin.isBlockedIp(ip)) {
      countRejection(ctx.stats, 'blocked:');
      return { status: 403, body: 'blocked: your address is blocked\n' };
    }
    const refused = limiter?.admitConnection(ip);
    if (refused) {
      countRejection(ctx.stats, refused);
      return { status: 429, body: `${refused}\n`, retryAfter: '60' };
    }
    return undefined;
  };
  app.addHook('onRequest', async (req, reply) => {
    if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket') return;
    const refused = admitUpgrade(req.ip);
    if (!refused) return;
    if (refused.retryAfter) reply.header('retry-after', refused.retryAfter);
    return reply.code(refused.status).send(refused.body);
  });

  registerHttpLimits(app, { maxBodyBytes: config.maxHttpBodyBytes, limiter, stats: ctx.stats });

  deps.infoContributors.push(() => {
    const s = admin.settings();
    return {
      ...(s.name ? { name: s.name } : {}),
      ...(s.description ? { description: s.description } : {}),
      ...(s.icon ? { icon: s.icon } : {}),
      supported_nips: [86],
      limitation: {
        restricted_writes: config.writePolicy !== 'open',
        max_outbound_bytes: config.maxOutboundBytes,
        max_http_body_bytes: config.maxHttpBodyBytes,
      },
      ...(limits
        ? {
            rate_limits: {
              window_seconds: 60,
              connections_per_ip: limits.connectionsPerIp,
              connections_per_loopback: limits.connectionsPerLoopback,
              events_per_ip: limits.eventsPerIp,
              events_per_pubkey: limits.eventsPerPubkey,
              reqs_per_ip: limits.reqsPerIp,
              reqs_per_pubkey: limits.reqsPerPubkey,
              http_requests_per_ip: limits.httpPerIp,
            },
          }
        : {}),
    };
  });

  const sources: DashboardSource = {};
  const sampler = new FigureSampler({
    stats: ctx.stats,
    connections: ctx.connections,
    storage: local ? createStorageProbe(local.db, local.path, deps.nowMs) : ctx.store.provides.storageFigures,
    sources,
    moderation: () => admin.counts(),
    relay: () => ({ name: admin.settings().name ?? config.name, version: deps.version, writePolicy: config.writePolicy }),
    nowMs: deps.nowMs,
  });
  sampler.start();
  ctx.stats.onLatency.push((kind, seconds) => (kind === 'ok' ? sampler.ok : sampler.eose).observe(seconds));
  const metrics = createMetricsRegistry({ sampler, stats: ctx.stats, version: deps.version, token: config.metricsToken, processMetrics: deps.processMetrics });
  registerMetrics(app, metrics, config.metricsToken);

  let closing = false;
  const ready: ReadinessCheck = local
    ? createSqliteReadiness(
        local.db,
        () => closing,
        () => local.integrity(),
      )
    : () => (closing ? { ready: false, reason: 'shutting down' } : { ready: true, schema: 0 });
  registerHealth(app, ready);

  const disconnectIp = (ip: string) => {
    let n = 0;
    for (const conn of ctx.connections) {
      if (normalizeIp(conn.ip) !== ip) continue;
      conn.close(1008, 'blocked');
      n++;
    }
    return n;
  };
  // On a shared database every instance applies every NIP-86 change, in log order.
  const shared = ctx.store.provides.sharedAdmin;
  shared?.follow((entry) => applyManagementChange({ admin, disconnectIp }, entry.method, entry.params));
  registerNip86(app, {
    admin,
    admins,
    isRelayUrl: ctx.isRelayUrl,
    now: () => ctx.now(),
    verify: (ev) => verifyEventSync(ev).ok,
    disconnectIp,
    shared,
  });
  if (admins.size === 0) log.info('no admin pubkeys configured: the NIP-86 management API refuses every call');

  const dashboard = config.dashboard ? registerDashboard(app, { sampler, token: config.adminToken, traces: createDashboardTraces(ctx) }) : undefined;
  if (dashboard && !config.adminToken) log.warn('dashboard is served without a token: set ROOST_ADMIN_TOKEN before exposing this relay');

  return {
    sources,
    admin,
    limiter,
    sampler,
    metrics,
    admins,
    ready,
    admitUpgrade,
    beginClose() {
      closing = true;
      dashboard?.closeStreams();
    },
    close() {
      sampler.stop();
      if (!adminDb && db.open) db.close();
    },
  };
}
