import type { NegentropySessions } from './handlers/negentropy.js';
import type { Logger } from 'pino';
import type { NostrEvent, VerifiedEvent } from '../shared/event.js';
import type { RelayConfig } from './config.js';
import type { Connection, Subscription } from './connection.js';
import type { RejectEvent, RejectFilter } from './policies/types.js';
import type { RelayUrlCheck } from './relay-url.js';
import type { EventStore } from './store/types.js';
import type { SubscriptionIndex } from './subscriptions/index.js';
import type { RelayTracing } from './tracing.js';
import type { Verifier } from './verify/index.js';

/** Handles a verified event of one kind in place of storing it (e.g. wake registration). */
export type KindHandler = (event: VerifiedEvent, conn: Connection) => Promise<{ accepted: boolean; reason: string }>;

/** Runs after an event is stored and fanned out; must be cheap and synchronous. */
export type OnEventSaved = (event: VerifiedEvent, seq: number) => void;

/**
 * Called for an EVENT that ends without being proven a new event of its author: refused by a policy, a duplicate, an
 * id the author deleted, or a bad signature (hooks that charged the author at admission give the charge back).
 */
export type OnEventUnproven = (event: NostrEvent) => void;

/**
 * Runs for each stored event sent to a connection, from storage or live, after the send; must be
 * cheap, synchronous and must not throw (it runs inside the store's commit notification).
 */
export type OnDelivered = (conn: Connection, seq: number, raw: string) => void;

/** Runs after a connection has authenticated as `pubkey` (NIP-42). */
export type OnAuth = (conn: Connection, pubkey: string) => void;

/** Counters the metrics and dashboard read. */
export interface RelayStats {
  eventsReceived: number;
  eventsStored: number;
  eventsEphemeral: number;
  eventsDuplicate: number;
  eventsRejected: number;
  rejections: Map<string, number>;
  /** Replicated events this relay's policies or store refused, by NIP-01 reason prefix. */
  replicationRefused: Map<string, number>;
  /** Replicated events that were already stored (a ring of relays; a first sync overlapping the tail). */
  replicationDuplicates: number;
  reqs: number;
  counts: number;
  deliveries: number;
  connectionsOpened: number;
  slowClientsCut: number;
  errors: number;
  /** Client mistakes by kind (client-mistakes.ts): oversized frames, protocol violations, malformed messages. */
  clientMistakes: Map<string, number>;
  /** The latest internal failures, oldest first (at most {@link RECENT_ERRORS_KEPT}). */
  recentErrors: RecentError[];
  /** Latency observers in seconds; the metrics plugin adds its histograms here. */
  onLatency: Array<(kind: LatencyKind, seconds: number) => void>;
}

/** One recent internal failure, for the dashboard: where, when, and the error's code and message (never content). */
export interface RecentError {
  /** Milliseconds since the epoch. */
  at: number;
  source: string;
  code?: string;
  message: string;
}

/** `ok`: EVENT received → OK sent; `eose`: REQ received → EOSE sent. */
export type LatencyKind = 'ok' | 'eose';

/** How many recent errors the stats keep. */
export const RECENT_ERRORS_KEPT = 20;

/** Everything the per-message pipeline needs; built once by buildRelay. */
export interface RelayContext {
  readonly config: RelayConfig;
  readonly log: Logger;
  readonly store: EventStore;
  readonly verifier: Verifier;
  readonly index: SubscriptionIndex<Subscription>;
  readonly connections: Set<Connection>;
  /** Authenticated live connections per pubkey (presence, wake decisions). */
  readonly online: Map<string, number>;
  readonly privateKinds: ReadonlySet<number>;
  /** Replica relays allowed to read every private event once authenticated (`replicaReaders`). */
  readonly replicaReaders: ReadonlySet<string>;
  /** Pubkeys of the relays this one replicates from (learnt from their NIP-11 document). */
  readonly replicationOrigins: Set<string>;
  /** Open NIP-77 sessions of every connection (handlers/negentropy.ts). */
  readonly negentropy: NegentropySessions;
  /** Whether a URL names this relay (NIP-42 relay tag, NIP-98 `u` tag), from configuration or the socket, never from headers. */
  readonly isRelayUrl: RelayUrlCheck;
  readonly hooks: {
    rejectEvent: RejectEvent[];
    rejectFilter: RejectFilter[];
    onEventSaved: OnEventSaved[];
    onEventUnproven: OnEventUnproven[];
    kindHandlers: Map<number, KindHandler>;
    onDelivered: OnDelivered[];
    onAuth: OnAuth[];
  };
  readonly stats: RelayStats;
  /** Seconds since the epoch. */
  now(): number;
  /** Spans for ingest (docs/observability.md); `tracing.enabled` is false when off. */
  readonly tracing: RelayTracing;
  /** Delivers an event (stored with seq, or ephemeral) to matching live subscriptions. */
  fanOut(event: NostrEvent, raw: string, seq: number | undefined): void;
}

/** Fresh zeroed counters. */
export function createStats(): RelayStats {
  return {
    eventsReceived: 0,
    eventsStored: 0,
    eventsEphemeral: 0,
    eventsDuplicate: 0,
    eventsRejected: 0,
    rejections: new Map(),
    replicationRefused: new Map(),
    replicationDuplicates: 0,
    reqs: 0,
    counts: 0,
    deliveries: 0,
    connectionsOpened: 0,
    slowClientsCut: 0,
    errors: 0,
    clientMistakes: new Map(),
    recentErrors: [],
    onLatency: [],
  };
}

/** Counts an internal failure and keeps it among the recent errors. */
export function recordError(stats: RelayStats, source: string, err: unknown, at = Date.now()): void {
  stats.errors++;
  const e = err as { code?: unknown; message?: unknown } | undefined;
  const code = typeof e?.code === 'string' ? e.code : undefined;
  const message = String(typeof e?.message === 'string' ? e.message : err).slice(0, 300);
  stats.recentErrors.push({ at, source, ...(code ? { code } : {}), message });
  if (stats.recentErrors.length > RECENT_ERRORS_KEPT) stats.recentErrors.shift();
}

/** Reports one latency to the observers. */
export function observeLatency(stats: RelayStats, kind: LatencyKind, seconds: number): void {
  for (const fn of stats.onLatency) fn(kind, seconds);
}

/** Counts a refusal under its NIP-01 prefix. */
export function countRejection(stats: RelayStats, reason: string): void {
  const prefix = reason.slice(0, Math.max(0, reason.indexOf(':'))) || 'other';
  stats.rejections.set(prefix, (stats.rejections.get(prefix) ?? 0) + 1);
}
