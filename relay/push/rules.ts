import { createHash } from 'node:crypto';
import { parsePublicUrls } from '../relay-url.js';
import { getRetryDelay } from './backoff.js';
import type { PushConfig } from './senders.js';
import type { SendOutcome, WakeHint, WakePlatform, WakeSenders, WakeTarget } from './types.js';

/*
 * The wake queue's rules, one copy for both queues (wake.ts on SQLite, postgres.ts on a shared
 * database): when a due wake is released or held, when a due push is dropped, what a retry or a
 * give-up is, and what the device is told. The queues differ only in how they read and write rows.
 */

const HOUR_MS = 3_600_000;

/** Counters since start (the {@link PushStats} figures each queue keeps). */
export interface WakeCounters {
  /** Wakes queued (at most one pending per agent). */
  queued: number;
  /** Pushes accepted by APNs or FCM. */
  sent: number;
  /** Pushes rescheduled after 429, 5xx or a network error. */
  retried: number;
  /** Pushes given up: attempts or TTL exhausted, or a permanent error that keeps the token. */
  failed: number;
  /** Registrations removed because the push service called their token dead. */
  pruned: number;
  /** Wakes and pushes dropped because the agent came online or removed the device first. */
  cancelled: number;
  /** Wakes held back by the per-agent hourly cap. */
  rateLimited: number;
}

/** Fresh counters. */
export function makeWakeCounters(): WakeCounters {
  return { queued: 0, sent: 0, retried: 0, failed: 0, pruned: 0, cancelled: 0, rateLimited: 0 };
}

/** An agent's hourly wake window. */
export interface WakeWindow {
  windowStart: number;
  windowCount: number;
}

/** Whether a due wake goes out now (with the agent's window after it) or waits for its next window. */
export type WakeRelease = { kind: 'release'; window: WakeWindow } | { kind: 'hold'; until: number };

/** The per-agent hourly cap applied to a due wake (`window` undefined: never woken). */
export function decideWakeRelease(window: WakeWindow | undefined, now: number, perHour: number): WakeRelease {
  let windowStart = window?.windowStart ?? 0;
  let windowCount = window?.windowCount ?? 0;
  if (now - windowStart >= HOUR_MS) {
    windowStart = now;
    windowCount = 0;
  }
  if (windowCount >= perHour) return { kind: 'hold', until: windowStart + HOUR_MS };
  return { kind: 'release', window: { windowStart, windowCount: windowCount + 1 } };
}

/** A due push, as both queues read it. */
export interface DuePush {
  owner: string;
  platform: WakePlatform;
  token: string;
  seq: number;
  queuedAt: number;
  attempts: number;
  /** The channel it goes to; undefined when it was removed since. */
  target: WakeTarget | undefined;
}

/** Why a due push is dropped unsent. */
export type DropReason = 'removed' | 'online' | 'expired' | 'unconfigured';

/**
 * Why a due push cannot be sent, or undefined when it can. `online`: whether the agent is online,
 * asked by the caller only for a push still addressed to a channel (a query on a shared database).
 */
export function getDropReason(d: DuePush, online: boolean | undefined, now: number, config: PushConfig, senders: WakeSenders): DropReason | undefined {
  if (!d.target) return 'removed';
  if (online) return 'online';
  if (now >= d.queuedAt + config.pushWakeTtlSeconds * 1000) return 'expired';
  if (!senders[d.platform]) return 'unconfigured';
  return undefined;
}

/** Counts a dropped push: cancelled when the agent no longer needs it, failed otherwise. */
export function countDrop(counters: WakeCounters, why: DropReason): void {
  if (why === 'removed' || why === 'online') counters.cancelled++;
  else counters.failed++;
}

/** What a finished retryable send leads to: another attempt at `at`, or giving up (attempts or TTL spent). */
export function planRetry(
  d: DuePush,
  attempt: number,
  outcome: Extract<SendOutcome, { kind: 'retry' }>,
  now: number,
  config: PushConfig,
  random: () => number,
): { kind: 'retry'; at: number; delayMs: number } | { kind: 'give-up' } {
  const delayMs = getRetryDelay(attempt, { baseMs: config.pushRetryBaseMs, maxMs: config.pushRetryMaxMs }, random, outcome.retryAfterMs);
  if (attempt >= config.pushMaxAttempts || now + delayMs >= d.queuedAt + config.pushWakeTtlSeconds * 1000) return { kind: 'give-up' };
  return { kind: 'retry', at: now + delayMs, delayMs };
}

/** What the device is told: where to resume, nothing private; one collapse id per agent and relay. */
export function makeWakeHint(d: DuePush, now: number, config: PushConfig & { publicUrl: string }, relayPubkey: string): WakeHint {
  const expiresAtMs = d.queuedAt + config.pushWakeTtlSeconds * 1000;
  return {
    // The first public URL: the one agents are told to reconnect to.
    relay: parsePublicUrls(config.publicUrl)[0] ?? '',
    seq: d.seq,
    collapseId: getCollapseId(relayPubkey, config.publicUrl, d.owner),
    expiresAt: Math.floor(expiresAtMs / 1000),
    ttlSeconds: Math.max(0, Math.floor((expiresAtMs - now) / 1000)),
  };
}

/** The same for every wake of one agent on one relay, so a newer wake replaces an older one on the device. */
export function getCollapseId(relayPubkey: string, publicUrl: string, owner: string): string {
  const h = createHash('sha256').update(`${relayPubkey}\n${publicUrl}\n${owner}`).digest('hex');
  return `roost-${h.slice(0, 32)}`;
}

/** A push's key while in flight. */
export function getPushKey(d: Pick<DuePush, 'owner' | 'platform' | 'token'>): string {
  return `${d.owner}\u0000${d.platform}\u0000${d.token}`;
}
