import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { finalizeEvent, generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import * as nip44 from 'nostr-tools/nip44';
import pino, { type Logger } from 'pino';
import type { NostrEvent } from '../../../shared/event.js';
import { Kind } from '../../../shared/kinds.js';
import type { PushClock } from '../../../relay/push/types.js';

const MIGRATION = fileURLToPath(new URL('../../../migrations/0003_push.sql', import.meta.url));

/** A temporary folder, removed by the returned function. */
export function makeTempDir(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'roost-push-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Opens (or reopens) a SQLite file the way the relay does, with the push tables. */
export function openPushDb(file: string): Database.Database {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  const has = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'push_wakes'").get();
  // Until the lead's migration runner lands, the test applies the migration itself, once per file.
  if (!has) db.exec(readFileSync(MIGRATION, 'utf8'));
  return db;
}

/** A pino logger whose lines the test reads back as objects and as raw text. */
export function makeLogger(): { log: Logger; lines: string[]; records: () => Array<Record<string, unknown>> } {
  const lines: string[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(s) });
  return { log, lines, records: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

/** A clock that moves only when told to; timers fire as it passes them. */
export class ManualClock implements PushClock {
  #now: number;
  #timers: Array<{ at: number; fn: () => void; live: boolean }> = [];

  constructor(start = 1_700_000_000_000) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimer(fn: () => void, ms: number): () => void {
    const t = { at: this.#now + ms, fn, live: true };
    this.#timers.push(t);
    return () => {
      t.live = false;
    };
  }

  /** Moves time forward, firing due timers in order. */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      const next = this.#timers.filter((t) => t.live && t.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!next) break;
      this.#now = Math.max(this.#now, next.at);
      next.live = false;
      next.fn();
    }
    this.#now = end;
    this.#timers = this.#timers.filter((t) => t.live);
  }
}

/** An agent's keypair. */
export function makeAgent(): { secretKey: Uint8Array; pubkey: string } {
  const secretKey = generateSecretKey();
  return { secretKey, pubkey: getPublicKey(secretKey) };
}

/** A signed kind-29059 registration whose content is NIP-44 encrypted to `relayPubkey`. */
export function makeRegistrationEvent(
  agent: { secretKey: Uint8Array },
  relayPubkey: string,
  payload: unknown,
  createdAt = Math.floor(Date.now() / 1000),
  tags: string[][] = [],
): NostrEvent {
  const key = nip44.v2.utils.getConversationKey(agent.secretKey, relayPubkey);
  return finalizeEvent({ kind: Kind.WakeRegistration, created_at: createdAt, tags, content: nip44.v2.encrypt(JSON.stringify(payload), key) }, agent.secretKey);
}

/** A signed event addressed to the given agents. */
export function makeAddressedEvent(author: { secretKey: Uint8Array }, to: string[], content = 'secret hello'): NostrEvent {
  return finalizeEvent({ kind: 1, created_at: Math.floor(Date.now() / 1000), tags: to.map((p) => ['p', p]), content }, author.secretKey);
}

/** A fake-looking but well-formed APNs device token. */
export function makeApnsToken(): string {
  return Buffer.from(generateSecretKey()).toString('hex');
}

/** A well-formed FCM registration token. */
export function makeFcmToken(): string {
  return `fcm_${Buffer.from(generateSecretKey()).toString('base64url')}:APA91b${Buffer.from(generateSecretKey()).toString('base64url')}`;
}
