import Database from 'better-sqlite3';
import type { InboxMessage } from '../../client/node/index.js';

/** One message as the bridge keeps it: a local sequence number, the rumor (or event) id, and the message. */
export interface MailEntry {
  seq: number;
  id: string;
  receivedAt: number;
  message: InboxMessage;
}

/** Acknowledged mail is kept this long so `fetch` still finds it, then dropped at start. */
const KEEP_ACKED_MS = 7 * 24 * 3600 * 1000;

/**
 * The bridge's durable mailbox (`<home>/mcp.db`): every message the agent's inbox hands over is
 * committed here before the agent's relay cursor moves, keyed by its rumor id (UNIQUE), so a message
 * two relays carry, or one the relay resends after a crash, is kept once. The MCP host reads it from
 * its own cursor (`acked`), which moves only on `ack`: a host that dies mid-turn reads the same mail.
 */
export class Mailbox {
  readonly #db: Database.Database;
  readonly #insert: Database.Statement;
  readonly #listAfter: Database.Statement;
  readonly #bySeq: Database.Statement;
  readonly #byId: Database.Statement;
  readonly #count: Database.Statement;
  readonly #max: Database.Statement;

  constructor(path: string, now: () => number = Date.now) {
    this.#db = new Database(path);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = FULL');
    this.#db.pragma('busy_timeout = 5000');
    this.#db.exec(`
      CREATE TABLE IF NOT EXISTS mail (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        received_at INTEGER NOT NULL,
        json TEXT NOT NULL
      );
      CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
      INSERT OR IGNORE INTO state (key, value) VALUES ('acked', 0);
    `);
    // WHERE NOT EXISTS rather than INSERT OR IGNORE: an ignored row would still use up a seq (AUTOINCREMENT).
    this.#insert = this.#db.prepare('INSERT INTO mail (id, received_at, json) SELECT @id, @at, @json WHERE NOT EXISTS (SELECT 1 FROM mail WHERE id = @id)');
    this.#listAfter = this.#db.prepare('SELECT seq, id, received_at, json FROM mail WHERE seq > ? ORDER BY seq LIMIT ?');
    this.#bySeq = this.#db.prepare('SELECT seq, id, received_at, json FROM mail WHERE seq = ?');
    this.#byId = this.#db.prepare('SELECT seq, id, received_at, json FROM mail WHERE id = ? OR id LIKE ? ORDER BY seq LIMIT 2');
    this.#count = this.#db.prepare('SELECT count(*) AS n FROM mail WHERE seq > ?');
    this.#max = this.#db.prepare('SELECT coalesce(max(seq), 0) AS m FROM mail');
    this.#db.prepare('DELETE FROM mail WHERE seq <= ? AND received_at < ?').run(this.acked, now() - KEEP_ACKED_MS);
  }

  /** Commits a message; false when its id was kept before (another relay, or a resend after a crash). */
  add(message: InboxMessage, atMs: number): boolean {
    const id = message.type === 'dm' ? message.id : message.event.id;
    return this.#insert.run({ id, at: atMs, json: JSON.stringify(message) }).changes === 1;
  }

  /** The host's cursor: every message up to this seq was acknowledged. */
  get acked(): number {
    return (this.#db.prepare("SELECT value FROM state WHERE key = 'acked'").get() as { value: number }).value;
  }

  /** The highest seq held. */
  get last(): number {
    return (this.#max.get() as { m: number }).m;
  }

  /** Messages after `seq` (default the acked cursor), oldest first. */
  list(after: number = this.acked, limit = 20): MailEntry[] {
    return (this.#listAfter.all(after, limit) as Row[]).map(toEntry);
  }

  /** How many messages come after `seq`. */
  countAfter(seq: number): number {
    return (this.#count.get(seq) as { n: number }).n;
  }

  /** One message by seq, or by id (a unique prefix of at least 8 hex characters works). */
  get(ref: { seq?: number; id?: string }): MailEntry | undefined {
    if (ref.seq !== undefined) {
      const row = this.#bySeq.get(ref.seq) as Row | undefined;
      return row && toEntry(row);
    }
    const id = (ref.id ?? '').toLowerCase();
    const rows = this.#byId.all(id, `${id}%`) as Row[];
    return rows.length === 1 ? toEntry(rows[0]!) : rows.find((r) => r.id === id) && toEntry(rows.find((r) => r.id === id)!);
  }

  /** Moves the cursor forward to `seq` (never back); returns the cursor. */
  ack(seq: number): number {
    this.#db.prepare("UPDATE state SET value = max(value, ?) WHERE key = 'acked'").run(seq);
    return this.acked;
  }

  /** Closes the database. */
  close(): void {
    this.#db.close();
  }
}

interface Row {
  seq: number;
  id: string;
  received_at: number;
  json: string;
}

function toEntry(r: Row): MailEntry {
  return { seq: r.seq, id: r.id, receivedAt: r.received_at, message: JSON.parse(r.json) as InboxMessage };
}
