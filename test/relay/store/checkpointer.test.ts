import { existsSync, mkdtempSync, openSync, readSync, closeSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { VerifiedEvent } from '../../../shared/event.js';
import { Checkpointer } from '../../../relay/store/checkpointer.js';
import { SqliteStore } from '../../../relay/store/sqlite.js';
import { waitFor } from '../../helpers/wait.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'roost-ckpt-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** The WAL header's salt-1: SQLite changes it each time the WAL starts over from its first frame. */
function walSalt(path: string): number {
  const fd = openSync(`${path}-wal`, 'r');
  const head = Buffer.alloc(32);
  readSync(fd, head, 0, 32, 0);
  closeSync(fd);
  return head.readUInt32BE(16);
}

const hex = (n: number) => n.toString(16).padStart(64, '0');

function note(n: number): VerifiedEvent {
  return {
    id: hex(n),
    pubkey: hex(1_000_000 + (n % 7)),
    created_at: 1_700_000_000 + n,
    kind: 1,
    tags: [['p', hex(2_000_000 + (n % 50))]],
    content: `note ${n}`,
    sig: '0'.repeat(128),
  } as VerifiedEvent;
}

describe('Checkpointer', () => {
  it('copies the WAL while the writer goes on, holds it only for the end, and the WAL then starts over', async () => {
    const path = join(dir, 'w.db');
    const db = new BetterSqlite3(path);
    db.pragma('journal_mode = WAL');
    db.pragma('wal_autocheckpoint = 0');
    db.exec('CREATE TABLE t (v TEXT)');
    const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
    const commit = (n: number) =>
      db.transaction(() => {
        for (let i = 0; i < n; i++) insert.run(`row ${Math.random()}`.repeat(20));
      })();
    let held = false;
    let holds = 0;
    let finished = 0;
    const c = new Checkpointer({
      path,
      synchronous: 'FULL',
      onHold: () => {
        held = true;
        holds++;
      },
      onFinished: () => {
        held = false;
        finished++;
      },
    });
    try {
      commit(2000);
      const salt = walSalt(path);
      c.request();
      // The writer keeps committing while the worker copies the bulk, and stops while held.
      let commitsDuringBulk = 0;
      while (finished === 0) {
        if (!held) {
          commit(50);
          commitsDuringBulk++;
        }
        await new Promise((r) => setImmediate(r));
      }
      expect(holds).toBe(1);
      expect(commitsDuringBulk).toBeGreaterThan(0);
      commit(1);
      expect(walSalt(path)).not.toBe(salt);
      expect(db.prepare('SELECT count(*) FROM t').pluck().get()).toBeGreaterThan(2000);
    } finally {
      await c.close();
      db.close();
    }
  });

  it('releases a held writer when closed, and reports a worker that cannot open the database as failed', async () => {
    const path = join(dir, 'w.db');
    const db = new BetterSqlite3(path);
    db.pragma('journal_mode = WAL');
    let finished = 0;
    const c = new Checkpointer({ path, synchronous: 'NORMAL', onHold: () => void c.close(), onFinished: () => finished++ });
    c.request();
    await waitFor(() => finished === 1);
    db.close();

    const broken = new Checkpointer({ path: join(dir, 'missing', 'x.db'), synchronous: 'FULL', onHold: () => {}, onFinished: () => {} });
    await waitFor(() => broken.failed);
    broken.request();
    await broken.close();
  });
});

describe('SqliteStore with the checkpoint worker', () => {
  it('commits every write of a long burst, keeps the WAL bounded by starting it over, and leaves no WAL after close', async () => {
    const path = join(dir, 'relay.db');
    const store = new SqliteStore({ path, commitWindowMs: 0 });
    const salts = new Set<number>();
    let n = 0;
    for (let round = 0; round < 40; round++) {
      const writes = Array.from({ length: 150 }, () => store.write(note(++n)));
      const results = await Promise.all(writes);
      expect(results.every((r) => r.status === 'stored')).toBe(true);
      salts.add(walSalt(path));
    }
    // 6,000 events: a checkpoint is due every 2,000, and each one starts the WAL over.
    expect(salts.size).toBeGreaterThan(1);
    await store.close();
    expect(existsSync(`${path}-wal`)).toBe(false);
    const reopened = new SqliteStore({ path });
    expect(reopened.query([{ kinds: [1] }], { limits: [10_000] })).toHaveLength(n);
    expect(reopened.lastSeq()).toBe(n);
    await reopened.close();
  });
});
