import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import BetterSqlite3 from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDb } from '../../../cli/db.js';
import { readMigrations } from '../../../relay/store/migrate.js';
import { makeKey, nowSeconds, signEvent } from '../../helpers/events.js';
import { RawClient } from '../../helpers/raw-client.js';
import { startRelay } from '../../helpers/relay.js';

async function run(argv: string[]) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d) => (out += d));
  stderr.on('data', (d) => (err += d));
  const code = await runDb(argv, { stdout, stderr, stdin: new PassThrough(), env: {} });
  return { code, out, err };
}

function ids(path: string): string[] {
  const db = new BetterSqlite3(path, { readonly: true });
  try {
    return db.prepare('SELECT id FROM events ORDER BY id').pluck().all() as string[];
  } finally {
    db.close();
  }
}

describe('roost db', () => {
  const dir = mkdtempSync(join(tmpdir(), 'roost-db-'));
  const source = join(dir, 'source.db');
  const k = makeKey();
  let deletedId = '';
  let doomedEvent: ReturnType<typeof signEvent>;
  beforeAll(async () => {
    const t = await startRelay({ db: source });
    const c = await RawClient.connect(t.url);
    const base = nowSeconds() - 100;
    for (let i = 0; i < 40; i++) await c.publish(signEvent(makeKey(), { content: `note ${i}`, created_at: base + i, tags: [['p', k.pk]] }));
    await c.publish(signEvent(k, { kind: 0, content: '{"name":"old"}', created_at: base }));
    await c.publish(signEvent(k, { kind: 0, content: '{"name":"new"}', created_at: base + 1 }));
    await c.publish(signEvent(k, { kind: 30078, tags: [['d', 'settings']], content: 'v1', created_at: base }));
    const doomed = signEvent(k, { content: 'regret', created_at: base });
    deletedId = doomed.id;
    doomedEvent = doomed;
    await c.publish(doomed);
    await c.publish(signEvent(k, { kind: 5, tags: [['e', doomed.id]], created_at: base + 2 }));
    c.close();
    await t.close({ keep: true });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('exports JSON lines and imports them into a fresh database: the same events, signatures verified, refusals reported', async () => {
    const file = join(dir, 'events.jsonl');
    const exp = await run(['export', '--db', source, '--out', file]);
    expect(exp.code).toBe(0);
    expect(exp.err).toMatch(/export: 43 events/);
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(43);
    expect(lines.map((l) => (JSON.parse(l) as { id: string }).id)).not.toContain(deletedId);

    // Damage: not JSON, wrong shape, a forged signature, a changed content (id mismatch).
    const good = JSON.parse(lines[0]!) as Record<string, unknown>;
    appendFileSync(
      file,
      ['{not json', JSON.stringify({ hello: 'world' }), JSON.stringify({ ...good, sig: 'ab'.repeat(64) }), JSON.stringify({ ...good, content: 'edited' })].join(
        '\n',
      ) + '\n',
    );

    const fresh = join(dir, 'fresh.db');
    const rejects = join(dir, 'rejects.jsonl');
    const imp = await run(['import', file, '--db', fresh, '--rejects', rejects]);
    expect(imp.code).toBe(1);
    expect(imp.err).toMatch(/import: 43 imported, 0 already present, 4 refused, from 47 lines/);
    expect(imp.err).toMatch(/refused 1× invalid: not JSON/);
    expect(imp.err).toMatch(/refused 1× invalid: bad signature/);
    expect(imp.err).toMatch(/refused 1× invalid: event id does not match its content/);
    expect(
      readFileSync(rejects, 'utf8')
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { line: number }).line),
    ).toEqual([44, 45, 46, 47]);
    expect(ids(fresh)).toEqual(ids(source));

    // Storage rules travel with the data: the deletion is remembered, so the deleted event stays out.
    const again = await run(['import', file, '--db', fresh]);
    expect(again.err).toMatch(/0 imported, 43 already present, 4 refused/);
    const t = await startRelay({ db: fresh });
    const c = await RawClient.connect(t.url);
    expect((await c.publish(doomedEvent)).slice(2)).toEqual([false, 'blocked: this event was deleted by its author']);
    expect((await c.req('k', { authors: [k.pk], kinds: [0] })).map((e) => e.content)).toEqual(['{"name":"new"}']);
    c.close();
    await t.close({ keep: true });
  });

  it('refuses a PostgreSQL connection string instead of making a file of it', async () => {
    const r = await run(['export', '--db', 'postgres://roost:secret@127.0.0.1:1/roost']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/pg_dump/);
    expect(r.err).not.toMatch(/secret/);
  });

  it('reports statistics', async () => {
    const r = await run(['stats', '--db', source, '--json']);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.out) as Record<string, any>;
    expect(s).toMatchObject({
      events: 43,
      pubkeys: 41,
      lastSeq: 45,
      deletedIds: 1,
      schema: readMigrations().map((m) => m.version),
      moderation: { bannedPubkeys: 0 },
    });
    expect(s.kinds[0]).toEqual({ kind: 1, events: 40 });
    const text = await run(['stats', '--db', source]);
    expect(text.out).toMatch(/^events\s+43$/m);
  });

  it('backs up a database online while the relay writes, to a consistent copy', async () => {
    const t = await startRelay({ db: source });
    const c = await RawClient.connect(t.url);
    let writing = true;
    const writer = (async () => {
      const w = makeKey();
      for (let i = 0; writing && i < 2000; i++) await c.publish(signEvent(w, { content: `during backup ${i}` }));
    })();
    await new Promise((r) => setTimeout(r, 50));
    const dest = join(dir, 'backup.db');
    const r = await run(['backup', dest, '--db', source]);
    writing = false;
    await writer;
    c.close();
    await t.close({ keep: true });
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/backup: \d+ pages, .* written to/);
    const copy = new BetterSqlite3(dest, { readonly: true });
    expect(copy.pragma('integrity_check', { simple: true })).toBe('ok');
    const n = copy.prepare('SELECT COUNT(*) FROM events').pluck().get() as number;
    copy.close();
    expect(n).toBeGreaterThan(43);
    expect((await run(['backup', dest, '--db', source])).err).toMatch(/exists/);
  });

  it('explains bad usage', async () => {
    expect((await run(['frobnicate', '--db', source])).code).toBe(2);
    expect((await run(['import', join(dir, 'missing.jsonl'), '--db', join(dir, 'x.db')])).err).toMatch(/no file/);
    expect((await run(['export', '--db', join(dir, 'missing.db')])).err).toMatch(/no database/);
  });
});
