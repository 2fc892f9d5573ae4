import { type Replication, startReplication } from './replication/index.js';
import { NegentropySessions, negentropyInfo } from './handlers/negentropy.js';
import { isUtf8 } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import websocket from '@fastify/websocket';
import { pino, type Logger } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Socket } from 'node:net';
import { Kind } from '../shared/kinds.js';
import { makeAuthFrame, makeNoticeFrame } from '../shared/messages/relay.js';
import type { RelayConfig } from './config.js';
import { getSocketErrorMistake, logClientMistake } from './client-mistakes.js';
import { Connection } from './connection.js';
import { createStats, observeLatency, recordError, type RelayContext } from './context.js';
import { dispatch } from './dispatch.js';
import { InboundGate } from './inbound.js';
import { closeSubscription } from './handlers/req.js';
import { getRateLimits, getTrustProxy, installOperator, type Operator } from './operator/index.js';
import { SharedRateBudget } from './policies/shared-rate-limit.js';
import { createClientAddress, installUpgradePath, quietRepeatedEnds } from './upgrade.js';
import { warmUp, type WarmUpOptions, type WarmUpReport } from './warmup.js';
import { iceServersInfo } from './plugins/ice-servers.js';
import { buildRelayInfo, setCorsHeaders, type InfoContributor } from './plugins/nip11.js';
import { registerPresence } from './plugins/presence.js';
import {
  rejectAuthEventsAsEvents,
  rejectCreatedAtOutOfRange,
  rejectExpired,
  rejectLongContent,
  rejectProtectedUnlessAuthor,
  rejectTooManyFilters,
  rejectTooManyFilterValues,
  rejectTooManyTags,
  rejectUnauthenticatedEvents,
  rejectUnauthenticatedFilters,
} from './policies/limits.js';
import { rejectPrivateInboxReads } from './policies/private-inbox.js';
import { IDENTITY_KINDS } from '../shared/identity-log.js';
import { createKeyEventPolicy, getKeyEventClaims, getPriorKeys, makeKeyEventLookup, onKeyEventSaved } from './policies/identity.js';
import { getTaskStepClaims, makeTaskLookup, rejectInvalidBallots, rejectInvalidTaskEvents } from './policies/tasks.js';
import { createLocalClaims, makeClaimReason, ReplayedReads, releaseClaims, runWithLaterReads } from './policies/later-reads.js';
import type { RejectEvent, RejectFilter } from './policies/types.js';
import { createRelayUrlCheck, parsePublicUrls } from './relay-url.js';
import { SqliteStore } from './store/sqlite.js';
import { PostgresStore, isPostgresUrl } from './store/postgres.js';
import { getPublicKey } from 'nostr-tools/pure';
import { isPending, type EventStore, type LocalTables, type SharedWakeBackend, type StoreCapabilities, type SyncEventReads } from './store/types.js';
import type { SharedPushWake } from './push/postgres.js';
import { createFanOut } from './subscriptions/fan-out.js';
import { SubscriptionIndex } from './subscriptions/index.js';
import { createVerifier, type Verifier } from './verify/index.js';
import { makeReason } from '../shared/reason.js';
import { configuredPrivateKinds, createSqliteMailboxStorage, installMailbox, type Mailbox, type MailboxBacklog } from './mailbox/index.js';
import { loadOrCreateRelayIdentity, type RelayIdentity } from './identity.js';
import { createPushWake, type PushWake, type PushWakeDeps } from './push/index.js';
import { installSharedDocs, type SharedDocs } from './crdt/index.js';
import { createTracing, type RelayTracing, traceLogFields } from './tracing.js';
import type { VerifiedEvent } from '../shared/event.js';

/** I/O edges a relay is built with; each has a production default. */
export interface RelayDeps {
  log?: Logger;
  store?: EventStore;
  verifier?: Verifier;
  /** Seconds since the epoch. */
  now?: () => number;
  /** Random bytes (challenges, connection ids). */
  random?: (n: number) => Buffer;
  /** Push wake senders, clock and randomness (tests point them at fake servers). */
  push?: Pick<PushWakeDeps, 'senders' | 'clock' | 'random'>;
  /** Milliseconds since the epoch (rate limits, dashboard sampling). */
  nowMs?: () => number;
  /** Span export; by default from the OTEL_* settings (off unless `otelTracesExporter` is `otlp`). */
  tracing?: RelayTracing;
  /** Replication links: reconnect backoff (tests shorten it). */
  replication?: { backoffMs?: (attempt: number) => number };
}

/** A built relay: the fastify app (not listening) and its pipeline context. */
export interface Relay {
  app: FastifyInstance;
  ctx: RelayContext;
  /** Subsystems add NIP-11 fields here. */
  infoContributors: InfoContributor[];
  /** Delivery accounting, quota and retention; absent when the store has no relay-local tables. */
  mailbox: Mailbox | undefined;
  /** Moderation, rate limits, metrics, health and the dashboard; subsystems add dashboard figures to `operator.sources`. */
  operator: Operator;
  /** Shared documents: membership enforcement and snapshot compaction. */
  sharedDocs: SharedDocs;
  /** The relay's one keypair: its NIP-11 pubkey, wake registrations, mDNS adverts and the replica's NIP-42 AUTH. */
  identity: RelayIdentity;
  /** Replication from the `replicateFrom` upstreams (docs/federation.md). */
  replication: Replication;
  /**
   * Serves synthetic read-only agents over loopback through the real accept path and touches the database's
   * hot pages, within `budgetMs`, so the first clients do not pay for a cold process (relay/warmup.ts). Call
   * before listening.
   */
  warmUp(budgetMs: number, opts?: Pick<WarmUpOptions, 'maxAgents' | 'concurrency' | 'clock' | 'onListening'>): Promise<WarmUpReport>;
  /** Stops accepting, closes connections, flushes pending writes, closes the database. */
  close(): Promise<void>;
}

/** Kinds whose events form private inboxes (NIP-04 DMs, NIP-59 gift wraps). */
export const PRIVATE_KINDS: readonly number[] = [Kind.EncryptedDirectMessage, Kind.GiftWrap];

/** The default policy list; a new rule is one more entry. */
export function defaultPolicies(config: RelayConfig, privateKinds: ReadonlySet<number>): { rejectEvent: RejectEvent[]; rejectFilter: RejectFilter[] } {
  const rejectEvent: RejectEvent[] = [];
  const rejectFilter: RejectFilter[] = [];
  if (config.authRequired) {
    rejectEvent.push(rejectUnauthenticatedEvents());
    rejectFilter.push(rejectUnauthenticatedFilters());
  }
  rejectEvent.push(
    rejectAuthEventsAsEvents(),
    rejectTooManyTags(config.maxEventTags),
    rejectLongContent(config.maxContentLength),
    rejectCreatedAtOutOfRange(config.createdAtPastLimit, config.createdAtFutureLimit),
    rejectExpired(),
    rejectProtectedUnlessAuthor(),
  );
  rejectFilter.push(rejectTooManyFilters(config.maxFilters), rejectTooManyFilterValues(config.maxFilterValues), rejectPrivateInboxReads(privateKinds));
  return { rejectEvent, rejectFilter };
}

function packageVersion(): string {
  try {
    const url = new URL('../../package.json', import.meta.url);
    const alt = new URL('../package.json', import.meta.url);
    for (const u of [url, alt]) {
      try {
        return (JSON.parse(readFileSync(u, 'utf8')) as { version: string }).version;
      } catch {
        // try the next location (source tree vs dist/)
      }
    }
  } catch {
    // fall through
  }
  return '0.0.0';
}

/**
 * Push wake: the relay's identity (NIP-11 pubkey), kind 29059 registrations, and a wake queued in
 * the same transaction as each stored event addressed to an agent that is not connected.
 */
function wirePushWake(ctx: RelayContext, local: LocalTables, identity: RelayIdentity, info: InfoContributor[], deps: RelayDeps['push'] = {}): PushWake {
  const push = createPushWake({
    db: local.db,
    identity,
    config: ctx.config,
    log: ctx.log,
    isOnline: (pubkey) => ctx.online.has(pubkey),
    tracing: ctx.tracing,
    ...deps,
  });
  ctx.hooks.kindHandlers.set(Kind.WakeRegistration, async (event) => {
    const r = push.handleWakeRegistration(event);
    return r.ok ? { accepted: true, reason: '' } : { accepted: false, reason: r.reason };
  });
  local.addInTransaction((event, seq) => push.onEventStored(event, seq));
  info.push(() => ({ wake: push.describeWake() }));
  push.start();
  return push;
}

/**
 * With presence shared across a cluster: an agent's row is written when it authenticates, refreshed
 * by a heartbeat of every agent online here, and removed when its last connection here closes.
 */
function sharePresence(ctx: RelayContext): NodeJS.Timeout | undefined {
  const shared = ctx.store.provides.sharedPresence;
  if (!shared) return undefined;
  const failed = (err: unknown) => ctx.log.warn({ err }, 'presence update failed');
  ctx.hooks.onAuth.push(function sharePresence(_conn, pubkey) {
    shared.markOnline([pubkey]).catch(failed);
  });
  const timer = setInterval(() => shared.markOnline([...ctx.online.keys()]).catch(failed), shared.heartbeatMs);
  timer.unref();
  return timer;
}

/** Push wake on a database shared by a cluster: the same identity and queue on every instance. */
async function wireSharedPushWake(
  ctx: RelayContext,
  backend: SharedWakeBackend,
  identity: RelayIdentity,
  info: InfoContributor[],
  deps: RelayDeps['push'] = {},
): Promise<SharedPushWake> {
  const push = await backend.open({ config: ctx.config, log: ctx.log, secretKey: identity.secretKey, pubkey: identity.pubkey, ...deps });
  ctx.hooks.kindHandlers.set(Kind.WakeRegistration, async (event) => {
    const r = await push.handleWakeRegistration(event);
    return r.ok ? { accepted: true, reason: '' } : { accepted: false, reason: r.reason };
  });
  info.push(() => ({ wake: push.describeWake() }));
  push.start();
  return push;
}

/** The relay identity from a key kept in a shared database. */
function sharedRelayIdentity(secretKey: Uint8Array): RelayIdentity {
  return { secretKey, pubkey: getPublicKey(secretKey), path: undefined, created: false };
}

/** The most of the relay's time the dashboard's backlog reads may take (the read walks every agent's mail). */
const BACKLOG_READ_SHARE = 0.01;

/**
 * The dashboard's mailbox figures (sampled about once a second, synchronously): a backlog that answers
 * later is shown from the last answer, one read at a time. A read that took d ms is not repeated for
 * d / BACKLOG_READ_SHARE ms (the last figures are shown meanwhile), so with many agents the sampler
 * never costs the relay more than 1 % of its time (it was 1.7 % of a private reconnect storm's CPU).
 */
export function mailboxFigures(
  mailbox: Pick<Mailbox, 'backlog'>,
  onError: (err: unknown) => void,
  now: () => number = performance.now.bind(performance),
): () => MailboxBacklog {
  let last: MailboxBacklog = { agents: 0, waiting: 0, undelivered: 0 };
  let reading = false;
  let nextAt = -Infinity;
  return () => {
    if (reading) return last;
    const start = now();
    if (start < nextAt) return last;
    const r = mailbox.backlog();
    const end = now();
    nextAt = end + (end - start) / BACKLOG_READ_SHARE;
    if (!isPending(r)) return (last = r);
    reading = true;
    r.then((v) => void (last = v), onError).finally(() => (reading = false));
    return last;
  };
}

/** Says, once at start, which subsystems this store cannot back (so none is turned off silently). */
function logMissingCapabilities(log: Logger, provides: StoreCapabilities): void {
  const off: string[] = [];
  if (!provides.local && !provides.docCompaction) off.push('CRDT compaction');
  if (!provides.local && !provides.mailbox) off.push('mailbox ledger, quota and retention');
  if (!provides.local) off.push(...(provides.sharedWake ? [] : ['push wake']), ...(provides.storageFigures ? [] : ['storage figures']));
  if (!provides.adminDb && !provides.sharedAdmin) off.push('persistent moderation lists and admin state (kept in memory)');
  if (off.length > 0) log.warn({ off }, `this store does not back: ${off.join(', ')}`);
}

/**
 * Random bytes from the system CSPRNG, drawn 4 KiB at a time: every connection takes 24 bytes (its id
 * and NIP-42 challenge), and one call per connection into the CSPRNG cost more than the rest of its
 * set-up. Each byte is handed out once.
 */
export function createRandomPool(size = 4096): (n: number) => Buffer {
  let pool = Buffer.alloc(0);
  let used = 0;
  return (n) => {
    if (n > size) return randomBytes(n);
    if (used + n > pool.length) {
      pool = randomBytes(size);
      used = 0;
    }
    const out = Buffer.from(pool.subarray(used, used + n));
    pool.fill(0, used, used + n);
    used += n;
    return out;
  };
}

/** Builds the relay without listening, so every test can build a fresh one. */
export async function buildRelay(config: RelayConfig, deps: RelayDeps = {}): Promise<Relay> {
  const log = deps.log ?? pino({ level: config.logLevel, mixin: traceLogFields });
  const now = deps.now ?? (() => Math.floor(Date.now() / 1000));
  const random = deps.random ?? createRandomPool();
  const store =
    deps.store ??
    (isPostgresUrl(config.db)
      ? await PostgresStore.open({ url: config.db, commitMaxBatch: config.commitMaxBatch, now, log })
      : new SqliteStore({
          path: config.db,
          syncMode: config.syncMode,
          startupCheck: config.dbStartupCheck,
          commitWindowMs: config.commitWindowMs,
          commitMaxBatch: config.commitMaxBatch,
          now,
        }));
  logMissingCapabilities(log, store.provides);
  const checked = store.provides.local;
  if (checked && checked.integrity().state === 'pending') {
    log.info({ db: config.db }, 'database integrity check running in the background');
    void checked.integrityChecked.then((s) => {
      if (s.state === 'failed')
        log.error(
          { db: config.db, problems: s.detail },
          'database failed its integrity check: /ready now answers 503; restore from a backup (roost db backup) or export what can be read',
        );
      else if (s.state === 'ok') log.info({ db: config.db, ms: Math.round(s.ms) }, 'database integrity check passed');
    });
  }
  const verifier =
    deps.verifier ??
    (await createVerifier({
      backend: config.verifyBackend,
      ...(config.verifyWorkers >= 0 ? { workers: config.verifyWorkers } : {}),
      logger: log,
    }));
  if (parsePublicUrls(config.publicUrl).length === 0)
    log.warn(
      "no public URL configured (ROOST_PUBLIC_URL): NIP-42 AUTH and NIP-98 calls are accepted only for this machine's own addresses on the listening port (ws://localhost:PORT, ws://127.0.0.1:PORT from this machine); set it to the ws(s):// address clients use before exposing this relay",
    );
  const privateKinds = new Set([...PRIVATE_KINDS, ...configuredPrivateKinds(config)]);
  const stats = createStats();
  const index = new SubscriptionIndex<import('./connection.js').Subscription>();
  const policies = defaultPolicies(config, privateKinds);
  const hooks: RelayContext['hooks'] = { ...policies, onEventSaved: [], onEventUnproven: [], kindHandlers: new Map(), onDelivered: [], onAuth: [] };
  const tracing = deps.tracing ?? createTracing(config);
  // Every relay named in a stored origin chain: their connections are checked against the chains (handlers/auth.ts).
  const replicationOrigins = new Set(await (store.provides.replication?.replicationPeers() ?? []));
  const fanOut = createFanOut(
    index,
    privateKinds,
    stats,
    config.maxOutboundBytes,
    hooks.onDelivered,
    (seq) => store.provides.replication?.originOf(seq),
    () => replicationOrigins.size > 0,
  );
  const ctx: RelayContext = {
    config,
    log,
    store,
    verifier,
    index,
    connections: new Set(),
    online: new Map(),
    privateKinds,
    replicaReaders: new Set(
      config.replicaReaders
        .split(',')
        .map((k) => k.trim())
        .filter((k) => k !== ''),
    ),
    negentropy: new NegentropySessions(config),
    replicationOrigins,
    isRelayUrl: createRelayUrlCheck(parsePublicUrls(config.publicUrl)),
    hooks,
    stats,
    now,
    tracing,
    fanOut,
  };
  const committed = (event: VerifiedEvent, seq: number, raw: string) => {
    fanOut(event, raw, seq);
    for (const hook of ctx.hooks.onEventSaved) {
      try {
        hook(event, seq);
      } catch (err) {
        recordError(stats, 'onEventSaved hook', err);
        log.error({ err, eventId: event.id }, 'onEventSaved hook failed');
      }
    }
  };
  store.setOnStored((event, seq, raw) => {
    stats.eventsStored++;
    if (tracing.enabled && tracing.isPending(event.id)) tracing.traceCommitted(event.id, () => committed(event, seq, raw));
    else committed(event, seq, raw);
  });

  const version = packageVersion();
  // One identity: the NIP-11 pubkey, the key wake registrations are encrypted to, and the key a replica
  // authenticates upstream with. Kept beside the database (`<db>.key`); an in-memory database has one for the run.
  // The relay's one key: beside a SQLite file, or (a cluster) in the shared database.
  const relayKey = store.provides.relayKey;
  const identity = relayKey ? sharedRelayIdentity(await relayKey()) : loadOrCreateRelayIdentity(config.db);
  const infoContributors: InfoContributor[] = [
    () => ({ pubkey: identity.pubkey, self: identity.pubkey }),
    iceServersInfo(config),
    () => ({ roost: { auth_challenge: config.authRequired ? 'connect' : config.authChallenge } }),
    negentropyInfo(config),
  ];
  const { local, syncReads } = store.provides;
  let push: PushWake | SharedPushWake | undefined;
  let sqlitePush: PushWake | undefined;
  if (local) push = sqlitePush = wirePushWake(ctx, local, identity, infoContributors, deps.push);
  else if (store.provides.sharedWake) push = await wireSharedPushWake(ctx, store.provides.sharedWake, identity, infoContributors, deps.push);
  // Key event logs and the task, ballot and membership policies read the store. On SQLite they read on the
  // caller's turn; on a store that answers later the same hooks run over replayed reads and answer with a
  // promise, and the rules with a check-then-insert race claim their keys in the database (later-reads.ts).
  const replayed = syncReads ? undefined : new ReplayedReads(store);
  const reads: SyncEventReads = syncReads ?? replayed!;
  const mailboxStorage = local && syncReads ? createSqliteMailboxStorage(local.db) : replayed ? store.provides.mailbox?.(replayed) : undefined;
  const mailbox = mailboxStorage ? installMailbox(ctx, mailboxStorage, reads, infoContributors) : undefined;
  const keyLookup = makeKeyEventLookup(reads);
  const priorKeys = (pk: string) => getPriorKeys(keyLookup, pk);
  const taskLookup = makeTaskLookup(reads);
  const taskPolicy = rejectInvalidTaskEvents(taskLookup, priorKeys);
  const ballotPolicy = rejectInvalidBallots(taskLookup, priorKeys);
  const keyEvents = createKeyEventPolicy(keyLookup);
  if (replayed) {
    const claims = store.provides.claims ?? createLocalClaims();
    const held = new Map<string, readonly string[]>();
    hooks.rejectEvent.push(
      runWithLaterReads(replayed, taskPolicy, { store: claims, rule: { keys: getTaskStepClaims, reason: makeClaimReason }, held }),
      runWithLaterReads(replayed, ballotPolicy),
      runWithLaterReads(replayed, keyEvents.reject, { store: claims, rule: { keys: getKeyEventClaims, reason: makeClaimReason }, held }),
    );
    const release = releaseClaims(claims, held, (err) => log.warn({ err }, 'releasing a policy claim failed (it lapses after 60 s)'));
    hooks.onEventUnproven.push(release);
    hooks.onEventSaved.push(release);
  } else hooks.rejectEvent.push(taskPolicy, ballotPolicy, keyEvents.reject);
  hooks.onEventUnproven.push(keyEvents.release);
  hooks.onEventSaved.push(keyEvents.release);
  if (sqlitePush) {
    const p = sqlitePush;
    hooks.onEventSaved.push(onKeyEventSaved(keyLookup, (from, to, at) => p.followKey(from, to, at)));
  } else if (push && replayed && store.provides.sharedWake?.followKey) {
    // Every instance sees the stored rotation; the statement copies the registration once.
    const follow = store.provides.sharedWake.followKey.bind(store.provides.sharedWake);
    const failed = (err: unknown) => log.error({ err }, 'moving a wake registration to a new key failed');
    const hook = onKeyEventSaved(keyLookup, (from, to, at) => void follow(from, to, at).catch(failed));
    hooks.onEventSaved.push(function followKeyEventShared(event, seq) {
      if (!IDENTITY_KINDS.includes(event.kind)) return;
      const r = replayed.run(() => hook(event, seq));
      if (isPending(r)) r.catch(failed);
    });
  }
  const sharedDocs = installSharedDocs(
    ctx,
    { reads, replayed, db: local?.db, compaction: store.provides.docCompaction, claims: store.provides.claims },
    infoContributors,
    priorKeys,
  );
  const app = Fastify({
    loggerInstance: log,
    logController: new LogController({ disableRequestLogging: true }),
    trustProxy: getTrustProxy(config.trustProxy),
    bodyLimit: config.maxHttpBodyBytes,
  }) as unknown as FastifyInstance;
  // No route takes JSON or text bodies: without these parsers such a body is refused (415) unread; only the
  // parsers routes register (NIP-86's) remain, and plugins/http-limits.ts checks against them before any read.
  app.removeAllContentTypeParsers();
  const connOf = new WeakMap<WebSocket, Connection>();
  // UTF-8 is checked per frame below so a bad frame gets a NOTICE instead of a closed connection; no
  // per-message deflate (ws's default for servers, stated: its zlib contexts cost memory per connection).
  const wsOptions = {
    noServer: true,
    clientTracking: false,
    perMessageDeflate: false,
    maxPayload: Math.min(config.maxMessageLength * 4, 64 * 1024 * 1024),
    skipUTF8Validation: true,
  };
  await app.register(websocket, {
    options: { clientTracking: false, perMessageDeflate: false, maxPayload: wsOptions.maxPayload, skipUTF8Validation: true },
    // Errors on a client's socket: the client's mistakes (a frame over maxPayload, a protocol
    // violation, a reset) are counted and logged briefly; anything else is the relay's fault.
    errorHandler: (err, socket, req) => onSocketError(err, socket, req.log),
  });
  function onSocketError(err: unknown, socket: WebSocket, reqLog: Logger | FastifyInstance['log']): void {
    const conn = connOf.get(socket);
    const mistake = getSocketErrorMistake(err);
    if (mistake === undefined) {
      recordError(stats, 'websocket', err);
      (conn?.log ?? reqLog).error({ err }, 'websocket connection failed');
    } else {
      const e = err as { code?: string; message?: string };
      logClientMistake(conn?.log ?? reqLog, conn ?? { mistakes: 0 }, stats.clientMistakes, mistake, mistake === 'reset' ? 'debug' : 'info', e);
    }
    socket.terminate();
  }
  /** The error listener of an open connection: holds nothing but what the socket reaches. */
  function onOpenSocketError(this: WebSocket, err: Error): void {
    onSocketError(err, this, log);
  }
  // Before the routes, so its connection gate hooks the WebSocket route.
  // On a shared store the per-IP and per-pubkey rates hold across instances (relay/policies/shared-rate-limit.ts).
  const sharedRates = store.provides.sharedRates;
  const rateBudget = sharedRates && getRateLimits(config) ? await SharedRateBudget.open({ store: sharedRates, nowMs: deps.nowMs ?? Date.now, log }) : undefined;
  const operator = installOperator({ app, ctx, infoContributors, version, log, nowMs: deps.nowMs ?? Date.now, makeRateBuckets: rateBudget?.makeBuckets });
  // Bans and settings made on other instances of a cluster are in force before the first connection.
  await store.provides.sharedAdmin?.catchUp();

  const swept = (n: number) => {
    if (n > 0) log.info({ removed: n }, 'expired events swept');
  };
  const sweepFailed = (err: unknown) => {
    recordError(stats, 'expiry sweep', err);
    log.error({ err }, 'expiry sweep failed');
  };
  const sweep = setInterval(() => {
    try {
      const n = store.sweepExpired(now());
      if (isPending(n)) n.then(swept, sweepFailed);
      else swept(n);
    } catch (err) {
      sweepFailed(err);
    }
  }, config.expirySweepSeconds * 1000);
  sweep.unref();

  let closed = false;
  const sockets = new Map<Connection, WebSocket>();
  const heartbeat = setInterval(() => {
    for (const [conn, ws] of sockets) {
      if (!conn.alive) {
        ws.terminate();
        continue;
      }
      conn.alive = false;
      ws.ping();
    }
  }, 30_000);
  heartbeat.unref();

  app.route({
    method: 'GET',
    url: '/',
    handler: async (req, reply) => {
      if ((req.headers.accept ?? '').includes('application/nostr+json')) {
        setCorsHeaders(reply);
        reply.type('application/nostr+json');
        return buildRelayInfo(config, version, infoContributors);
      }
      reply.type('text/plain; charset=utf-8');
      return `${config.name}: a Nostr relay for agents. Connect with a WebSocket client, or ask for NIP-11 with Accept: application/nostr+json.\n`;
    },
    // Upgrades fastify routes here (the relay's own path below takes `GET /` before fastify sees it).
    wsHandler: (socket, req) => {
      // @fastify/websocket's error listener closes over the upgrade's request and reply, and the HTTP
      // response stays attached to the TCP socket; together several KiB per connection for its whole life.
      socket.removeAllListeners('error');
      const tcp = req.raw.socket;
      (tcp as { _httpMessage?: { detachSocket(s: unknown): void } | null })._httpMessage?.detachSocket(tcp);
      accept(socket, req.ip, tcp);
    },
  });
  /**
   * How connections are accepted into a context: the relay's own, or the start-up warm-up's (relay/warmup.ts),
   * which runs the same code over a context of its own.
   */
  function makeAccept(ctx: RelayContext): (socket: WebSocket, ip: string, tcp: Socket) => void {
    const stats = ctx.stats;
    const countSlowClient = () => stats.slowClientsCut++;
    const observeEose = (seconds: number) => observeLatency(stats, 'eose', seconds);
    return function accept(socket, ip, tcp) {
      const id = random(8).toString('hex');
      const conn = new Connection(id, ip, socket, () => random(16).toString('hex'), tcp, ctx.isRelayUrl, log, {
        maxBufferedBytes: config.maxOutboundBytes,
        onOverflow: countSlowClient,
        transport: tcp,
        onEose: observeEose,
      });
      socket.on('error', onOpenSocketError);
      quietRepeatedEnds(socket, tcp);
      stats.connectionsOpened++;
      connOf.set(socket, conn);
      ctx.connections.add(conn);
      sockets.set(conn, socket);
      socket.on('pong', () => (conn.alive = true));
      const inbound = new InboundGate(socket, config.maxInflightEvents, (text) => dispatch(ctx, conn, text));
      socket.on('message', (data, isBinary) => {
        const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
        if (buf.length > config.maxMessageLength) {
          logClientMistake(conn.log, conn, stats.clientMistakes, 'oversized', 'debug', { message: `${buf.length} bytes` });
          conn.send(makeNoticeFrame(makeReason('invalid', `message larger than ${config.maxMessageLength} bytes`)));
          return;
        }
        if (isBinary) {
          logClientMistake(conn.log, conn, stats.clientMistakes, 'binary', 'debug');
          conn.send(makeNoticeFrame(makeReason('invalid', 'binary frames are not supported')));
          return;
        }
        if (!isUtf8(buf)) {
          logClientMistake(conn.log, conn, stats.clientMistakes, 'utf8', 'debug');
          conn.send(makeNoticeFrame(makeReason('invalid', 'frame is not valid UTF-8')));
          return;
        }
        inbound.push(buf.toString('utf8'));
      });
      socket.on('close', () => {
        inbound.close();
        if (conn.subs.size > 0) for (const sub of [...conn.subs.values()]) closeSubscription(ctx, sub);
        ctx.negentropy.closeAll(conn);
        for (const pk of conn.authed) {
          const n = (ctx.online.get(pk) ?? 1) - 1;
          if (n > 0) ctx.online.set(pk, n);
          else {
            ctx.online.delete(pk);
            ctx.store.provides.sharedPresence?.markOffline(pk).catch((err) => log.warn({ err }, 'presence update failed'));
          }
        }
        ctx.connections.delete(conn);
        sockets.delete(conn);
      });
      // On demand, the challenge comes with the first refusal that AUTH would lift (handlers/req.ts,
      // handlers/event.ts): clients that only read and write public events never see one.
      if (config.authChallenge === 'connect' || config.authRequired) conn.send(makeAuthFrame(conn.challenge));
    };
  }
  const accept = makeAccept(ctx);
  // The relay's WebSocket route, accepted on the HTTP server's 'upgrade' event (relay/upgrade.ts).
  const wss = new WebSocketServer(wsOptions);
  const uninstallUpgrade = installUpgradePath({
    server: app.server,
    wss,
    clientAddress: createClientAddress(getTrustProxy(config.trustProxy)),
    admit: operator.admitUpgrade,
    accept,
    closing: () => closed,
  });
  app.options('/', async (_req, reply) => {
    setCorsHeaders(reply);
    return reply.code(204).send();
  });
  registerPresence(app, ctx, infoContributors);
  const presenceTimer = sharePresence(ctx);
  const replication = startReplication(
    ctx,
    config.replicateFrom === '' ? undefined : identity.secretKey,
    deps.replication?.backoffMs ? { backoffMs: deps.replication.backoffMs } : {},
  );
  if (push) operator.sources.wake = () => push.stats();
  if (mailbox) operator.sources.mailbox = mailboxFigures(mailbox, (err) => log.warn({ err }, 'reading the mailbox backlog failed'));

  return {
    app,
    ctx,
    infoContributors,
    mailbox,
    operator,
    sharedDocs,
    identity,
    replication,
    warmUp(budgetMs, opts = {}) {
      // The warm-up's own context: the same store, verifier and settings; fresh statistics, index, online map
      // and policies (rate buckets untouched), and none of the hooks that record deliveries, AUTHs or writes.
      const policies = defaultPolicies(config, privateKinds);
      const shadow: RelayContext = {
        ...ctx,
        stats: createStats(),
        index: new SubscriptionIndex(),
        connections: new Set(),
        online: new Map(),
        negentropy: new NegentropySessions(config),
        hooks: { ...policies, onEventSaved: [], onEventUnproven: [], kindHandlers: new Map(), onDelivered: [], onAuth: [] },
      };
      return warmUp({ ...opts, budgetMs, accept: makeAccept(shadow), wss, db: local?.db });
    },
    async close() {
      if (closed) return;
      closed = true;
      uninstallUpgrade();
      operator.beginClose();
      await replication.close();
      clearInterval(sweep);
      clearInterval(heartbeat);
      clearInterval(presenceTimer);
      for (const conn of sockets.keys()) conn.close(1001, 'relay shutting down');
      await app.close();
      await push?.close();
      await mailbox?.close();
      sharedDocs.close();
      operator.close();
      await rateBudget?.close().catch((err) => log.warn({ err }, 'giving back rate leases failed'));
      await store.close();
      await verifier.close();
      await tracing.close();
    },
  };
}
