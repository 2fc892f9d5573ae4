import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { NostrEvent, VerifiedEvent } from '../../../shared/event.js';
import { SqliteStore } from '../../../relay/store/sqlite.js';
import type { EventStore, WriteResult } from '../../../relay/store/types.js';
import { PostgresStore } from '../../../relay/store/postgres.js';
import { postgresSkipReason, startPostgres, type PgServer } from '../../helpers/postgres.js';

// Table-driven storage rules: each case writes a sequence of events and states what each write
// returns and which ids remain stored. Ids are chosen so tie-breaks are explicit.
const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const id = (n: number) => n.toString(16).padStart(64, '0');
const NOW = 1_700_000_000;

function ev(n: number, p: Partial<NostrEvent>): VerifiedEvent {
  return { id: id(n), pubkey: A, created_at: NOW, kind: 1, tags: [], content: '', sig: '0'.repeat(128), ...p } as VerifiedEvent;
}

type Outcome = WriteResult['status'] | `rejected:${string}`;
interface Case {
  name: string;
  writes: VerifiedEvent[];
  outcomes: Outcome[];
  stored: number[];
}

const cases: Case[] = [
  { name: 'regular events are all kept', writes: [ev(1, {}), ev(2, {})], outcomes: ['stored', 'stored'], stored: [1, 2] },
  { name: 'same id twice is a duplicate', writes: [ev(1, {}), ev(1, {})], outcomes: ['stored', 'duplicate'], stored: [1] },
  {
    name: 'replaceable: newer replaces older',
    writes: [ev(1, { kind: 0, created_at: NOW - 10 }), ev(2, { kind: 0, created_at: NOW })],
    outcomes: ['stored', 'stored'],
    stored: [2],
  },
  {
    name: 'replaceable: older arriving late is refused',
    writes: [ev(2, { kind: 10002, created_at: NOW }), ev(1, { kind: 10002, created_at: NOW - 10 })],
    outcomes: ['stored', 'rejected:duplicate'],
    stored: [2],
  },
  {
    name: 'replaceable: equal created_at keeps the lowest id (lower arrives second)',
    writes: [ev(9, { kind: 3 }), ev(4, { kind: 3 })],
    outcomes: ['stored', 'stored'],
    stored: [4],
  },
  {
    name: 'replaceable: equal created_at keeps the lowest id (higher arrives second)',
    writes: [ev(4, { kind: 3 }), ev(9, { kind: 3 })],
    outcomes: ['stored', 'rejected:duplicate'],
    stored: [4],
  },
  {
    name: 'replaceable: other authors are independent',
    writes: [ev(1, { kind: 0 }), ev(2, { kind: 0, pubkey: B })],
    outcomes: ['stored', 'stored'],
    stored: [1, 2],
  },
  {
    name: 'addressable: replaced per d tag only',
    writes: [
      ev(1, { kind: 30023, tags: [['d', 'x']], created_at: NOW - 5 }),
      ev(2, { kind: 30023, tags: [['d', 'y']], created_at: NOW - 5 }),
      ev(3, { kind: 30023, tags: [['d', 'x']], created_at: NOW }),
    ],
    outcomes: ['stored', 'stored', 'stored'],
    stored: [2, 3],
  },
  {
    name: 'addressable: missing d tag is the empty address',
    writes: [ev(1, { kind: 30000, created_at: NOW - 5 }), ev(2, { kind: 30000, tags: [['d', '']], created_at: NOW })],
    outcomes: ['stored', 'stored'],
    stored: [2],
  },
  {
    name: 'addressable: older arriving late is refused',
    writes: [ev(2, { kind: 30001, tags: [['d', 'x']] }), ev(1, { kind: 30001, tags: [['d', 'x']], created_at: NOW - 1 })],
    outcomes: ['stored', 'rejected:duplicate'],
    stored: [2],
  },
  {
    name: 'deletion by e tag removes own event and refuses it again',
    writes: [ev(1, {}), ev(2, { kind: 5, tags: [['e', id(1)]] }), ev(1, {})],
    outcomes: ['stored', 'stored', 'rejected:blocked'],
    stored: [2],
  },
  {
    name: "deletion never removes another author's event",
    writes: [ev(1, { pubkey: B }), ev(2, { kind: 5, tags: [['e', id(1)]] }), ev(1, { pubkey: B })],
    outcomes: ['stored', 'stored', 'duplicate'],
    stored: [1, 2],
  },
  {
    name: "a stranger's deletion does not block the real author's later event",
    writes: [ev(2, { kind: 5, pubkey: B, tags: [['e', id(1)]] }), ev(1, {})],
    outcomes: ['stored', 'stored'],
    stored: [1, 2],
  },
  {
    name: 'deletion by a tag removes versions up to its created_at and refuses older ones',
    writes: [
      ev(1, { kind: 30023, tags: [['d', 'x']], created_at: NOW - 10 }),
      ev(2, { kind: 5, tags: [['a', `30023:${A}:x`]], created_at: NOW - 5 }),
      ev(3, { kind: 30023, tags: [['d', 'x']], created_at: NOW - 7 }),
      ev(4, { kind: 30023, tags: [['d', 'x']], created_at: NOW }),
    ],
    outcomes: ['stored', 'stored', 'rejected:blocked', 'stored'],
    stored: [2, 4],
  },
  {
    name: "deletion by a tag ignores another author's address",
    writes: [ev(1, { kind: 30023, pubkey: B, tags: [['d', 'x']] }), ev(2, { kind: 5, tags: [['a', `30023:${B}:x`]] })],
    outcomes: ['stored', 'stored'],
    stored: [1, 2],
  },
  {
    name: "a stranger's earlier request for the same id does not shadow the author's deletion",
    writes: [ev(1, {}), ev(2, { kind: 5, pubkey: B, tags: [['e', id(1)]] }), ev(3, { kind: 5, tags: [['e', id(1)]] }), ev(1, {})],
    outcomes: ['stored', 'stored', 'stored', 'rejected:blocked'],
    stored: [2, 3],
  },
  {
    name: 'deleting a deletion has no effect',
    writes: [ev(1, {}), ev(2, { kind: 5, tags: [['e', id(1)]] }), ev(3, { kind: 5, tags: [['e', id(2)]] })],
    outcomes: ['stored', 'stored', 'stored'],
    stored: [2, 3],
  },
];

// Each rule on each backend: SQLite, and PostgreSQL on a throwaway server (a fresh database per case).
const pgSkip = postgresSkipReason();
if (pgSkip) console.warn(pgSkip);
let server: Promise<PgServer> | undefined;
afterAll(async () => (await server)?.stop());

interface Opened {
  store: EventStore;
  /** Stored ids, ascending. */
  ids(): Promise<string[]>;
  /** Tag rows whose event is gone. */
  orphanTags(): Promise<number>;
  close(): Promise<void>;
}

const backends: Array<{ name: string; open(): Promise<Opened> }> = [
  {
    name: 'sqlite',
    async open() {
      const dir = mkdtempSync(join(tmpdir(), 'roost-rules-'));
      const store = new SqliteStore({ path: join(dir, 'r.db'), now: () => NOW, commitWindowMs: 0, syncMode: 'normal' });
      return {
        store,
        ids: async () => store.db.prepare('SELECT id FROM events ORDER BY id').pluck().all() as string[],
        orphanTags: async () => store.db.prepare('SELECT COUNT(*) FROM tags WHERE seq NOT IN (SELECT seq FROM events)').pluck().get() as number,
        async close() {
          await store.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
  ...(pgSkip
    ? []
    : [
        {
          name: 'postgres',
          async open(): Promise<Opened> {
            server ??= startPostgres({ fast: true });
            const store = await PostgresStore.open({ url: await (await server).createDatabase(), now: () => NOW });
            const col = async (sql: string) => (await store.pool.query(sql)).rows.map((r) => Object.values(r)[0]);
            return {
              store,
              ids: async () => (await col('SELECT id FROM events ORDER BY id')) as string[],
              orphanTags: async () => (await col('SELECT COUNT(*) FROM tags WHERE seq NOT IN (SELECT seq FROM events)'))[0] as number,
              close: () => store.close(),
            };
          },
        },
      ]),
];

describe.each(backends)('storage rules ($name)', (backend) => {
  let opened: Opened;
  let store: EventStore;
  beforeEach(async () => {
    opened = await backend.open();
    store = opened.store;
  });
  afterEach(async () => {
    await opened.close();
  });

  it.each(cases)('$name', async ({ writes, outcomes, stored }) => {
    const got: Outcome[] = [];
    for (const w of writes) {
      const r = await store.write(w);
      got.push(r.status === 'rejected' ? (`rejected:${r.reason.split(':')[0]}` as Outcome) : r.status);
    }
    expect(got).toEqual(outcomes);
    const ids = (await opened.ids()).map((x) => parseInt(x, 16));
    expect(ids).toEqual(stored);
    // Tag rows never outlive their event.
    expect(await opened.orphanTags()).toBe(0);
  });

  it('sequence numbers increase and are never reused after the newest event is deleted', async () => {
    const a = await store.write(ev(1, { kind: 0, created_at: NOW - 2 }));
    const b = await store.write(ev(2, { kind: 0, created_at: NOW - 1 }));
    const c = await store.write(ev(3, { kind: 1 }));
    const d = await store.write(ev(4, { kind: 5, tags: [['e', id(3)]] }));
    const e = await store.write(ev(5, { kind: 1 }));
    const seqs = [a, b, c, d, e].map((r) => (r.status === 'stored' ? r.seq : -1));
    expect(seqs).toEqual([1, 2, 3, 4, 5]);
    await store.catchUp();
    expect(store.lastSeq()).toBe(5);
  });

  it('group commit: concurrent writes share transactions and all resolve in order', async () => {
    const results = await Promise.all(Array.from({ length: 300 }, (_, i) => store.write(ev(100 + i, {}))));
    const seqs = results.map((r) => (r.status === 'stored' ? r.seq : -1));
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    expect(new Set(seqs).size).toBe(300);
  });

  it('an event queued twice in one group commit is stored once and its copy answered as a duplicate', async () => {
    const tagged = ev(1, { tags: [['p', B]] });
    const [first, second, other] = await Promise.all([store.write(tagged), store.write({ ...tagged } as VerifiedEvent), store.write(ev(2, {}))]);
    expect([first.status, second.status, other.status]).toEqual(['stored', 'duplicate', 'stored']);
    expect((await opened.ids()).map((x) => parseInt(x, 16))).toEqual([1, 2]);
    expect(await store.count([{ '#p': [B] }])).toBe(1);
  });

  it('expired events are hidden from reads and swept from disk', async () => {
    await store.write(ev(1, { tags: [['expiration', String(NOW - 1)]] }));
    await store.write(ev(2, { tags: [['expiration', String(NOW + 100)]] }));
    await store.write(ev(3, {}));
    expect((await store.query([{}])).length).toBe(2);
    expect(await store.count([{}])).toBe(2);
    expect(await store.sweepExpired(NOW)).toBe(1);
    expect(await store.sweepExpired(NOW + 100)).toBe(1);
    expect((await opened.ids()).length).toBe(1);
  });
});
