import { join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../../relay/store/sqlite.js';
import { makeKey, nowSeconds, signEvent } from '../../helpers/events.js';
import { RawClient } from '../../helpers/raw-client.js';
import { startRelay, type TestRelay } from '../../helpers/relay.js';
import { makeForwardingStore, makeLateStore } from '../../helpers/stores.js';
import { postgresSkipReason, startPostgres } from '../../helpers/postgres.js';
import { waitFor } from '../../helpers/wait.js';

// The relay turns subsystems on by what the store says it provides, not by its class: a store that
// forwards to SQLite keeps push, the mailbox and persistent moderation; one without those says so.
describe('store capabilities', () => {
  const dir = mkdtempSync(join(tmpdir(), 'roost-caps-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a forwarding store keeps push wake, the mailbox ledger, readiness and persistent moderation', async () => {
    const inner = new SqliteStore({ path: join(dir, 'fwd.db') });
    const t = await startRelay({ db: join(dir, 'fwd.db') }, { store: makeForwardingStore(inner) });
    try {
      expect(t.relay.mailbox).toBeDefined();
      const info = (await (await fetch(t.httpUrl, { headers: { accept: 'application/nostr+json' } })).json()) as Record<string, unknown>;
      expect(info.wake).toBeDefined();
      expect(info.pubkey).toMatch(/^[0-9a-f]{64}$/);
      expect((await fetch(`${t.httpUrl}/ready`)).status).toBe(200);
      expect(t.relay.operator.admin).toBeDefined();
      // Moderation lists are written to the store's own database.
      t.relay.operator.admin.banPubkey('a'.repeat(64), 'test');
      expect(inner.db.prepare('SELECT count(*) FROM banned_pubkeys').pluck().get()).toBe(1);
    } finally {
      await t.close();
    }
  });

  it('a store without local tables is named in a start-up warning; its policies still run (over replayed reads)', async () => {
    const lines: Array<{ msg: string; off?: string[] }> = [];
    const log = pino({ level: 'warn' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
    const inner = new SqliteStore({ path: join(dir, 'late.db') });
    const t = await startRelay({ db: join(dir, 'late.db') }, { store: makeLateStore(inner), log });
    try {
      const warning = lines.find((l) => l.off !== undefined);
      expect(warning?.off).toEqual(expect.arrayContaining(['push wake', 'mailbox ledger, quota and retention', 'CRDT compaction']));
      expect(warning?.off).not.toContain('task and ballot policies');
      expect(t.relay.mailbox).toBeUndefined();
    } finally {
      await t.close();
    }
  });
});

// PostgreSQL backs every subsystem SQLite does but replication (refused only when configured).
const pgSkip = postgresSkipReason();
describe.skipIf(pgSkip !== undefined)('store capabilities on PostgreSQL', () => {
  it('leaves nothing off: no start-up warning, mailbox and storage figures present', async () => {
    const lines: Array<{ msg: string; off?: string[] }> = [];
    const log = pino({ level: 'warn' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
    const server = await startPostgres({ fast: true });
    const t = await startRelay({ db: await server.createDatabase() }, { log });
    try {
      expect(lines.find((l) => l.off !== undefined)).toBeUndefined();
      expect(t.relay.mailbox).toBeDefined();
      await waitFor(() => (t.relay.operator.sampler.latest().storage?.bytes ?? 0) > 0, 'storage figures');
    } finally {
      await t.close();
      await server.stop();
    }
  });
});

// The relay's REQ, COUNT and sequence answers through a store that answers later: nothing lost or
// doubled between the stored answer and live delivery.
describe('asynchronous store answers', () => {
  let t: TestRelay;
  beforeAll(async () => {
    const folder = mkdtempSync(join(tmpdir(), 'roost-late-'));
    const inner = new SqliteStore({ path: join(folder, 'roost.db') });
    t = await startRelay({}, { store: makeLateStore(inner) }, folder);
  });
  afterAll(async () => {
    await t.close();
    rmSync(t.dir, { recursive: true, force: true });
  });

  it('answers REQ, COUNT, a page and a tail, then goes live', async () => {
    const author = makeKey();
    const c = await RawClient.connect(t.url);
    const base = nowSeconds() - 100;
    const evs = Array.from({ length: 5 }, (_, i) => signEvent(author, { content: `e${i}`, created_at: base + i }));
    for (const e of evs) expect((await c.publish(e))[2]).toBe(true);
    // A duplicate is known through the asynchronous isKnown.
    c.send(['EVENT', evs[0]]);
    await c.next((f) => f[0] === 'OK' && f[1] === evs[0]!.id && String(f[3]).startsWith('duplicate:'), 'duplicate OK');
    const got = await c.req('new', { authors: [author.pk] });
    expect(got.map((e) => e.id)).toEqual(evs.map((e) => e.id).reverse());
    c.send(['COUNT', 'n', { authors: [author.pk] }]);
    expect((await c.next((f) => f[0] === 'COUNT' && f[1] === 'n'))[2]).toEqual({ count: 5 });
    const page = await c.req('page', { authors: [author.pk], seq_after: 0, limit: 2 });
    expect(page.map((e) => e.id)).toEqual(evs.slice(0, 2).map((e) => e.id));
    const tail = await c.req('tail', { authors: [author.pk], seq_after: 0 });
    expect(tail.map((e) => e.id)).toEqual(evs.map((e) => e.id));
    const later = signEvent(author, { content: 'live', created_at: base + 10 });
    await c.publish(later);
    await c.next((f) => f[0] === 'EVENT' && f[1] === 'tail' && (f[2] as { id: string }).id === later.id, 'live on tail');
    await c.next((f) => f[0] === 'EVENT' && f[1] === 'new' && (f[2] as { id: string }).id === later.id, 'live on new');
    c.close();
  });
});
