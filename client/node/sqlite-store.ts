import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3, { type Database } from 'better-sqlite3';
import type { NostrEvent } from '../../shared/event.js';
import { ClientError } from '../errors.js';
import type { AgentStore, DocState, OutboxEntry, ParkedMessage } from '../store.js';

/** The agent database's schema, versioned with `user_version` (forward-only, like migrations/). */
const SCHEMA: readonly string[] = [
  `CREATE TABLE outbox (
     ord INTEGER PRIMARY KEY AUTOINCREMENT,
     id TEXT NOT NULL UNIQUE,
     event TEXT NOT NULL
   );
   CREATE TABLE outbox_relay (
     id TEXT NOT NULL,
     relay TEXT NOT NULL,
     PRIMARY KEY (id, relay)
   ) WITHOUT ROWID;
   CREATE TABLE cursor (relay TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;
   CREATE TABLE seen (id TEXT PRIMARY KEY, at INTEGER NOT NULL) WITHOUT ROWID;
   CREATE INDEX seen_at ON seen (at);`,
  // Shared documents: state, cursors and membership of each, written together.
  `CREATE TABLE doc (
     address TEXT NOT NULL UNIQUE,
     state BLOB NOT NULL,
     meta TEXT NOT NULL
   );`,
  // Messages held for a direct link until the peer acknowledges them (published through the relays on restart).
  `CREATE TABLE parked (
     ord INTEGER PRIMARY KEY AUTOINCREMENT,
     id TEXT NOT NULL UNIQUE,
     peer TEXT NOT NULL,
     data TEXT NOT NULL
   );`,
  // The last created_at handed out per replaceable kind and d, so each new version supersedes the last.
  `CREATE TABLE stamp (key TEXT PRIMARY KEY, at INTEGER NOT NULL) WITHOUT ROWID;`,
];

/** Options of the SQLite agent store. */
export interface SqliteAgentStoreOptions {
  /** `full` (default) fsyncs every commit: a cursor or outbox entry survives power loss. */
  synchronous?: 'full' | 'normal';
}

/**
 * The Node agent store: one SQLite file (WAL) holding the outbox, cursors, seen ids and messages
 * parked for direct links. An outbox
 * entry is committed before its event is first sent, so a killed agent resends it on restart.
 */
export class SqliteAgentStore implements AgentStore {
  readonly #db: Database;
  readonly #q;

  constructor(path: string, opts: SqliteAgentStoreOptions = {}) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    try {
      this.#db = new BetterSqlite3(path);
      this.#db.pragma('journal_mode = WAL');
    } catch (err) {
      throw new ClientError('ROOST_ERR_BAD_INPUT', `cannot open agent database ${path}: ${(err as Error).message}`, {}, { cause: err });
    }
    this.#db.pragma(`synchronous = ${opts.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
    this.#db.pragma('busy_timeout = 5000');
    const version = this.#db.pragma('user_version', { simple: true }) as number;
    for (let v = version; v < SCHEMA.length; v++) {
      this.#db.transaction(() => {
        this.#db.exec(SCHEMA[v]!);
        this.#db.pragma(`user_version = ${v + 1}`);
      })();
    }
    const db = this.#db;
    this.#q = {
      addEvent: db.prepare('INSERT OR IGNORE INTO outbox (id, event) VALUES (?, ?)'),
      addRelay: db.prepare('INSERT OR IGNORE INTO outbox_relay (id, relay) VALUES (?, ?)'),
      list: db.prepare(
        `SELECT o.event AS event, json_group_array(r.relay) AS relays
           FROM outbox o JOIN outbox_relay r ON r.id = o.id GROUP BY o.ord ORDER BY o.ord`,
      ),
      settle: db.prepare('DELETE FROM outbox_relay WHERE id = ? AND relay = ?'),
      left: db.prepare('SELECT 1 FROM outbox_relay WHERE id = ? LIMIT 1'),
      drop: db.prepare('DELETE FROM outbox WHERE id = ?'),
      getStamp: db.prepare('SELECT at FROM stamp WHERE key = ?'),
      setStamp: db.prepare('INSERT INTO stamp (key, at) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET at = excluded.at'),
      getCursor: db.prepare('SELECT seq FROM cursor WHERE relay = ?'),
      setCursor: db.prepare('INSERT INTO cursor (relay, seq) VALUES (?, ?) ON CONFLICT (relay) DO UPDATE SET seq = excluded.seq'),
      hasSeen: db.prepare('SELECT 1 FROM seen WHERE id = ?'),
      markSeen: db.prepare('INSERT INTO seen (id, at) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET at = excluded.at'),
      pruneOld: db.prepare('DELETE FROM seen WHERE at < ?'),
      pruneExcess: db.prepare('DELETE FROM seen WHERE id IN (SELECT id FROM seen ORDER BY at DESC LIMIT -1 OFFSET ?)'),
      park: db.prepare('INSERT OR IGNORE INTO parked (id, peer, data) VALUES (?, ?, ?)'),
      parked: db.prepare('SELECT peer, id, data FROM parked ORDER BY ord'),
      unpark: db.prepare('DELETE FROM parked WHERE id = ?'),
      getDoc: db.prepare('SELECT state, meta FROM doc WHERE address = ?'),
      putDoc: db.prepare(
        'INSERT INTO doc (address, state, meta) VALUES (?, ?, ?) ON CONFLICT (address) DO UPDATE SET state = excluded.state, meta = excluded.meta',
      ),
    };
  }

  async outboxAdd(event: NostrEvent, relays: readonly string[]): Promise<void> {
    this.#db.transaction(() => {
      this.#q.addEvent.run(event.id, JSON.stringify(event));
      for (const r of relays) this.#q.addRelay.run(event.id, r);
    })();
  }

  async outboxList(): Promise<OutboxEntry[]> {
    return (this.#q.list.all() as Array<{ event: string; relays: string }>).map((row) => ({
      event: JSON.parse(row.event) as NostrEvent,
      relays: JSON.parse(row.relays) as string[],
    }));
  }

  async outboxSettle(eventId: string, relay: string): Promise<void> {
    this.#db.transaction(() => {
      this.#q.settle.run(eventId, relay);
      if (!this.#q.left.get(eventId)) this.#q.drop.run(eventId);
    })();
  }

  async stampReplaceable(key: string, atSec: number): Promise<number> {
    return this.#db.transaction(() => {
      const last = (this.#q.getStamp.get(key) as { at: number } | undefined)?.at;
      const at = last !== undefined && atSec <= last ? last + 1 : atSec;
      this.#q.setStamp.run(key, at);
      return at;
    })();
  }

  async getCursor(relay: string): Promise<number> {
    return (this.#q.getCursor.get(relay) as { seq: number } | undefined)?.seq ?? 0;
  }

  async setCursors(cursors: ReadonlyMap<string, number>): Promise<void> {
    this.#db.transaction(() => {
      for (const [relay, seq] of cursors) this.#q.setCursor.run(relay, seq);
    })();
  }

  async hasSeen(id: string): Promise<boolean> {
    return this.#q.hasSeen.get(id) !== undefined;
  }

  async markDelivered(id: string, atMs: number, relay?: string, seq?: number): Promise<void> {
    this.#db.transaction(() => {
      this.#q.markSeen.run(id, atMs);
      if (relay !== undefined && seq !== undefined) this.#q.setCursor.run(relay, seq);
    })();
  }

  async markSeen(ids: readonly string[], atMs: number): Promise<void> {
    this.#db.transaction(() => {
      for (const id of ids) this.#q.markSeen.run(id, atMs);
    })();
  }

  async parkAdd(entries: readonly ParkedMessage[]): Promise<void> {
    this.#db.transaction(() => {
      for (const e of entries) this.#q.park.run(e.id, e.peer, e.data);
    })();
  }

  async parkList(): Promise<ParkedMessage[]> {
    return this.#q.parked.all() as ParkedMessage[];
  }

  async parkRemove(ids: readonly string[]): Promise<void> {
    this.#db.transaction(() => {
      for (const id of ids) this.#q.unpark.run(id);
    })();
  }

  async pruneSeen(beforeMs: number, keep: number): Promise<void> {
    this.#db.transaction(() => {
      this.#q.pruneOld.run(beforeMs);
      this.#q.pruneExcess.run(keep);
    })();
  }

  async getDoc(address: string): Promise<DocState | undefined> {
    const row = this.#q.getDoc.get(address) as { state: Buffer; meta: string } | undefined;
    if (!row) return undefined;
    const meta = JSON.parse(row.meta) as Omit<DocState, 'state'>;
    return { ...meta, state: new Uint8Array(row.state.buffer, row.state.byteOffset, row.state.byteLength) };
  }

  async putDoc(address: string, doc: DocState): Promise<void> {
    const { state, ...meta } = doc;
    this.#q.putDoc.run(address, Buffer.from(state.buffer, state.byteOffset, state.byteLength), JSON.stringify(meta));
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }
}
