import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { RoostError, loadConfig } from '../../relay/config.js';
import { buildRelay } from '../../relay/app.js';
import { resolveStartupCheck } from '../../relay/store/integrity.js';
import { SqliteStore } from '../../relay/store/sqlite.js';
import { makeKey, signEvent } from '../helpers/events.js';
import { spawnRelay } from '../helpers/process.js';
import { RawClient } from '../helpers/raw-client.js';
import { startRelay } from '../helpers/relay.js';

// Clean failure: storage errors give OK false with error:, never a false OK true; the relay
// refuses to start on a corrupt or newer-schema database with a clear message.
describe('clean failure', () => {
  const dir = mkdtempSync(join(tmpdir(), 'roost-fail-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a full database answers error: and every OK true is on disk', async () => {
    const t = await startRelay({}, {}, mkdtempSync(join(dir, 'full-')));
    const store = t.relay.ctx.store as SqliteStore;
    // SQLite reports SQLITE_FULL exactly as for a full disk once the page cap is reached.
    const pages = store.db.pragma('page_count', { simple: true }) as number;
    store.db.pragma(`max_page_count = ${pages + 8}`);
    const c = await RawClient.connect(t.url);
    const k = makeKey();
    const results: unknown[][] = [];
    for (let i = 0; i < 120; i++) results.push(await c.publish(signEvent(k, { content: 'x'.repeat(3000) + i })));
    const accepted = results.filter((r) => r[2] === true).map((r) => r[1] as string);
    const refused = results.filter((r) => r[2] === false);
    expect(refused.length).toBeGreaterThan(0);
    for (const r of refused) expect(r[3]).toMatch(/^error: storage failure: SQLITE_FULL/);
    store.db.pragma('max_page_count = 1073741823');
    const stored = new Set((await c.req('all', { authors: [k.pk], limit: 500 })).map((e) => e.id));
    expect(accepted.every((id) => stored.has(id))).toBe(true);
    expect(stored.size).toBe(accepted.length);
    // The relay recovers once space is back.
    expect((await c.publish(signEvent(k, { content: 'after' })))[2]).toBe(true);
    c.close();
    await t.close();
  });

  it('a read-only database answers error: and the relay keeps serving reads', async () => {
    const t = await startRelay();
    const c = await RawClient.connect(t.url);
    const k = makeKey();
    const first = signEvent(k, { content: 'before' });
    await c.publish(first);
    (t.relay.ctx.store as SqliteStore).db.pragma('query_only = ON');
    const refused = await c.publish(signEvent(k, { content: 'during' }));
    expect(refused[2]).toBe(false);
    expect(refused[3]).toMatch(/^error: storage failure: SQLITE_READONLY/);
    expect((await c.req('read', { authors: [k.pk] })).map((e) => e.id)).toEqual([first.id]);
    c.close();
    await t.close();
  });

  it('refuses to start on a corrupt database with a clear message', async () => {
    const db = join(dir, 'corrupt.db');
    writeFileSync(db, Buffer.concat([Buffer.from('SQLite format 3\0'), Buffer.alloc(4096, 0x5a)]));
    expect(() => new SqliteStore({ path: db })).toThrow(RoostError);
    try {
      new SqliteStore({ path: db });
    } catch (err) {
      expect((err as RoostError).code).toMatch(/^ROOST_ERR_DB_(OPEN|CORRUPT)$/);
    }
    await expect(spawnRelay({ ROOST_DB: db })).rejects.toThrow(/cannot start: .*(cannot open database|failed its integrity check)/);
  });

  /** A database of `rows` events whose page at 3/4 of the file (event data, far from the schema) is overwritten. */
  function makeDamagedDatabase(name: string, rows = 4000): string {
    const db = join(dir, name);
    new SqliteStore({ path: db }).close();
    const raw = new BetterSqlite3(db);
    const insert = raw.prepare('INSERT INTO events (id, pubkey, created_at, kind, raw) VALUES (?, ?, ?, 1, ?)');
    raw.transaction(() => {
      for (let i = 0; i < rows; i++) insert.run(i.toString(16).padStart(64, '0'), 'ab'.repeat(32), i, `{"n":${i},"pad":"${'x'.repeat(200)}"}`);
    })();
    raw.pragma('wal_checkpoint(TRUNCATE)');
    const pageSize = raw.pragma('page_size', { simple: true }) as number;
    raw.close();
    const pages = statSync(db).size / pageSize;
    const fd = openSync(db, 'r+');
    writeSync(fd, Buffer.alloc(pageSize, 0x5a), 0, pageSize, Math.floor(pages * 0.75) * pageSize);
    closeSync(fd);
    return db;
  }

  it('a damaged page deep in the file: a full start-up check refuses it, a background check fails /ready', async () => {
    const db = makeDamagedDatabase('damaged.db');
    expect(resolveStartupCheck('auto', db)).toBe('full'); // small files are checked before listening
    expect(() => new SqliteStore({ path: db, startupCheck: 'full' })).toThrow(/failed its integrity check/);

    const store = new SqliteStore({ path: db, startupCheck: 'background', checkpointWorker: false });
    expect(store.integrity.state).toBe('pending');
    const found = await store.integrityChecked;
    expect(found.state).toBe('failed');
    expect(store.integrity).toBe(found);
    await store.close();

    const relay = await buildRelay(loadConfig({ db, logLevel: 'silent', dbStartupCheck: 'background', rateLimit: false }));
    try {
      await (relay.ctx.store as SqliteStore).integrityChecked;
      const res = await relay.app.inject({ method: 'GET', url: '/ready' });
      expect(res.statusCode).toBe(503);
      expect(res.json().reason).toMatch(/^database failed its integrity check: /);
      expect((await relay.app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
    } finally {
      await relay.close();
    }
  });

  it('a sound database passes the background check and stays ready', async () => {
    const db = join(dir, 'sound.db');
    new SqliteStore({ path: db }).close();
    const relay = await buildRelay(loadConfig({ db, logLevel: 'silent', dbStartupCheck: 'background', rateLimit: false }));
    try {
      expect((await (relay.ctx.store as SqliteStore).integrityChecked).state).toBe('ok');
      expect((await relay.app.inject({ method: 'GET', url: '/ready' })).statusCode).toBe(200);
    } finally {
      await relay.close();
    }
  });

  it('refuses to start on a database written by a newer Roost', async () => {
    const db = join(dir, 'newer.db');
    new SqliteStore({ path: db }).close();
    const raw = new BetterSqlite3(db);
    raw.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, ?, 0)').run('9999_future.sql');
    raw.close();
    const config = loadConfig({ db, logLevel: 'silent' });
    await expect(buildRelay(config)).rejects.toMatchObject({ code: 'ROOST_ERR_SCHEMA_NEWER' });
    await expect(spawnRelay({ ROOST_DB: db })).rejects.toThrow(/migrations 9999 that this version of Roost does not know/);
  });
});
