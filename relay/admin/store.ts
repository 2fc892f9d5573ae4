import type { Database, Statement } from 'better-sqlite3';

/** An entry of a pubkey list (NIP-86 result shape). */
export interface PubkeyEntry {
  pubkey: string;
  reason?: string;
}

/** An entry of an event list (NIP-86 result shape). */
export interface EventEntry {
  id: string;
  reason?: string;
}

/** An entry of the IP block list (NIP-86 result shape). */
export interface IpEntry {
  ip: string;
  reason?: string;
}

/** NIP-11 fields an admin may change at run time. */
export interface RelaySettings {
  name?: string;
  description?: string;
  icon?: string;
}

type Table = 'banned_pubkeys' | 'allowed_pubkeys' | 'banned_events' | 'allowed_events' | 'blocked_ips';

/** One persisted list with its in-memory copy, so policy checks never touch the disk. */
class ListTable {
  readonly #mem = new Map<string, string>();
  readonly #insert: Statement;
  readonly #delete: Statement;
  readonly #now: () => number;

  constructor(db: Database, table: Table, keyColumn: string, now: () => number) {
    const rows = db.prepare(`SELECT ${keyColumn} AS k, reason FROM ${table} ORDER BY created_at, ${keyColumn}`).all() as Array<{ k: string; reason: string }>;
    for (const r of rows) this.#mem.set(r.k, r.reason);
    this.#insert = db.prepare(
      `INSERT INTO ${table} (${keyColumn}, reason, created_at) VALUES (?, ?, ?) ON CONFLICT (${keyColumn}) DO UPDATE SET reason = excluded.reason`,
    );
    this.#now = now;
    this.#delete = db.prepare(`DELETE FROM ${table} WHERE ${keyColumn} = ?`);
  }

  add(key: string, reason: string): void {
    this.#insert.run(key, reason, this.#now());
    this.#mem.set(key, reason);
  }

  remove(key: string): boolean {
    const had = this.#mem.delete(key);
    this.#delete.run(key);
    return had;
  }

  has(key: string): boolean {
    return this.#mem.has(key);
  }

  get size(): number {
    return this.#mem.size;
  }

  entries(): Array<[string, string]> {
    return [...this.#mem];
  }
}

const withReason = (reason: string) => (reason ? { reason } : {});

/**
 * The relay's moderation state (NIP-86): ban and allow lists, kind rules, blocked IPs and NIP-11
 * overrides, persisted in SQLite (migration 0004) and mirrored in memory for the policy hooks.
 * Every change is one statement, so it is durable when the call returns.
 */
export class AdminStore {
  readonly #db: Database;
  readonly #now: () => number;
  readonly #bannedPubkeys: ListTable;
  readonly #allowedPubkeys: ListTable;
  readonly #bannedEvents: ListTable;
  readonly #allowedEvents: ListTable;
  readonly #blockedIps: ListTable;
  readonly #kinds = new Map<number, 'allow' | 'disallow'>();
  readonly #settings = new Map<string, string>();
  readonly #s;

  /** `now` is seconds since the epoch. */
  constructor(db: Database, now: () => number = () => Math.floor(Date.now() / 1000)) {
    this.#db = db;
    this.#now = now;
    this.#bannedPubkeys = new ListTable(db, 'banned_pubkeys', 'pubkey', now);
    this.#allowedPubkeys = new ListTable(db, 'allowed_pubkeys', 'pubkey', now);
    this.#bannedEvents = new ListTable(db, 'banned_events', 'id', now);
    this.#allowedEvents = new ListTable(db, 'allowed_events', 'id', now);
    this.#blockedIps = new ListTable(db, 'blocked_ips', 'ip', now);
    for (const r of db.prepare('SELECT kind, rule FROM kind_rules').all() as Array<{ kind: number; rule: 'allow' | 'disallow' }>) {
      this.#kinds.set(r.kind, r.rule);
    }
    for (const r of db.prepare('SELECT key, value FROM relay_settings').all() as Array<{ key: string; value: string }>) {
      this.#settings.set(r.key, r.value);
    }
    this.#s = {
      setKind: db.prepare('INSERT INTO kind_rules (kind, rule, created_at) VALUES (?, ?, ?) ON CONFLICT (kind) DO UPDATE SET rule = excluded.rule'),
      setSetting: db.prepare('INSERT INTO relay_settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
      audit: db.prepare('INSERT INTO admin_audit (at, pubkey, method, params) VALUES (?, ?, ?, ?)'),
      deleteTags: db.prepare('DELETE FROM tags WHERE seq IN (SELECT seq FROM events WHERE id = ?)'),
      deleteEvent: db.prepare('DELETE FROM events WHERE id = ?'),
    };
  }

  /** Bans a pubkey and takes it off the allow list. */
  banPubkey(pubkey: string, reason = ''): void {
    this.#db.transaction(() => {
      this.#bannedPubkeys.add(pubkey, reason);
      this.#allowedPubkeys.remove(pubkey);
    })();
  }

  /** Lifts a ban (does not allow-list). */
  unbanPubkey(pubkey: string): boolean {
    return this.#bannedPubkeys.remove(pubkey);
  }

  /** Allow-lists a pubkey and lifts any ban. */
  allowPubkey(pubkey: string, reason = ''): void {
    this.#db.transaction(() => {
      this.#allowedPubkeys.add(pubkey, reason);
      this.#bannedPubkeys.remove(pubkey);
    })();
  }

  /** Takes a pubkey off the allow list (does not ban). */
  unallowPubkey(pubkey: string): boolean {
    return this.#allowedPubkeys.remove(pubkey);
  }

  /** True when the pubkey is banned. */
  isBannedPubkey(pubkey: string): boolean {
    return this.#bannedPubkeys.has(pubkey);
  }

  /** True when the pubkey is on the allow list. */
  isAllowedPubkey(pubkey: string): boolean {
    return this.#allowedPubkeys.has(pubkey);
  }

  /** Banned pubkeys, oldest ban first. */
  listBannedPubkeys(): PubkeyEntry[] {
    return this.#bannedPubkeys.entries().map(([pubkey, r]) => ({ pubkey, ...withReason(r) }));
  }

  /** Allow-listed pubkeys. */
  listAllowedPubkeys(): PubkeyEntry[] {
    return this.#allowedPubkeys.entries().map(([pubkey, r]) => ({ pubkey, ...withReason(r) }));
  }

  /** Bans an event id, takes it off the allow list and deletes the stored event; returns whether one was stored. */
  banEvent(id: string, reason = ''): boolean {
    let removed = false;
    this.#db.transaction(() => {
      this.#bannedEvents.add(id, reason);
      this.#allowedEvents.remove(id);
      this.#s.deleteTags.run(id);
      removed = this.#s.deleteEvent.run(id).changes > 0;
    })();
    return removed;
  }

  /** Lifts an event ban (the deleted event is not restored). */
  unbanEvent(id: string): boolean {
    return this.#bannedEvents.remove(id);
  }

  /** Allow-lists an event id and lifts any ban on it. */
  allowEvent(id: string, reason = ''): void {
    this.#db.transaction(() => {
      this.#allowedEvents.add(id, reason);
      this.#bannedEvents.remove(id);
    })();
  }

  /** Takes an event id off the allow list. */
  unallowEvent(id: string): boolean {
    return this.#allowedEvents.remove(id);
  }

  /** True when the event id is banned. */
  isBannedEvent(id: string): boolean {
    return this.#bannedEvents.has(id);
  }

  /** Banned event ids. */
  listBannedEvents(): EventEntry[] {
    return this.#bannedEvents.entries().map(([id, r]) => ({ id, ...withReason(r) }));
  }

  /** Allow-listed event ids. */
  listAllowedEvents(): EventEntry[] {
    return this.#allowedEvents.entries().map(([id, r]) => ({ id, ...withReason(r) }));
  }

  /** Marks a kind allowed (once any kind is allowed, only allowed kinds are accepted). */
  allowKind(kind: number): void {
    this.#s.setKind.run(kind, 'allow', this.#now());
    this.#kinds.set(kind, 'allow');
  }

  /** Marks a kind disallowed. */
  disallowKind(kind: number): void {
    this.#s.setKind.run(kind, 'disallow', this.#now());
    this.#kinds.set(kind, 'disallow');
  }

  /** Whether events of this kind may be published under the kind rules. */
  isKindAccepted(kind: number): boolean {
    const rule = this.#kinds.get(kind);
    if (rule === 'disallow') return false;
    if (rule === 'allow') return true;
    return !this.listAllowedKinds().length;
  }

  /** Explicitly allowed kinds, ascending. */
  listAllowedKinds(): number[] {
    return [...this.#kinds]
      .filter(([, r]) => r === 'allow')
      .map(([k]) => k)
      .sort((a, b) => a - b);
  }

  /** Disallowed kinds, ascending. */
  listDisallowedKinds(): number[] {
    return [...this.#kinds]
      .filter(([, r]) => r === 'disallow')
      .map(([k]) => k)
      .sort((a, b) => a - b);
  }

  /** Blocks an IP address. */
  blockIp(ip: string, reason = ''): void {
    this.#blockedIps.add(ip, reason);
  }

  /** Unblocks an IP address. */
  unblockIp(ip: string): boolean {
    return this.#blockedIps.remove(ip);
  }

  /** True when the address is blocked. */
  isBlockedIp(ip: string): boolean {
    return this.#blockedIps.size > 0 && this.#blockedIps.has(ip);
  }

  /** Blocked addresses. */
  listBlockedIps(): IpEntry[] {
    return this.#blockedIps.entries().map(([ip, r]) => ({ ip, ...withReason(r) }));
  }

  /** Overrides a NIP-11 field. */
  setSetting(key: keyof RelaySettings, value: string): void {
    this.#s.setSetting.run(key, value);
    this.#settings.set(key, value);
  }

  /** NIP-11 overrides set through the API. */
  settings(): RelaySettings {
    return Object.fromEntries(this.#settings) as RelaySettings;
  }

  /** Records a management call (who, what, with which parameters). */
  audit(pubkey: string, method: string, params: readonly unknown[]): void {
    this.#s.audit.run(this.#now(), pubkey, method, JSON.stringify(params));
  }

  /** Sizes of the lists (for the dashboard). */
  counts(): { bannedPubkeys: number; allowedPubkeys: number; bannedEvents: number; blockedIps: number } {
    return {
      bannedPubkeys: this.#bannedPubkeys.size,
      allowedPubkeys: this.#allowedPubkeys.size,
      bannedEvents: this.#bannedEvents.size,
      blockedIps: this.#blockedIps.size,
    };
  }
}
