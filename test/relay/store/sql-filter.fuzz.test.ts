import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareEventsNewestFirst, getExpiration, type NostrEvent, type VerifiedEvent } from '../../../shared/event.js';
import { matchFilter, type Filter } from '../../../shared/filter.js';
import { canRead } from '../../../relay/policies/private-inbox.js';
import { PostgresStore } from '../../../relay/store/postgres.js';
import { SqliteStore } from '../../../relay/store/sqlite.js';
import type { EventStore, WriteResult } from '../../../relay/store/types.js';
import { postgresSkipReason, startPostgres, type PgServer } from '../../helpers/postgres.js';
import { createRng } from '../../helpers/prng.js';

// Seeded fuzz: the SQL filter builder must agree with the pure matcher (the oracle) on every
// random filter over a random corpus, including ordering, limits, expiry, private inboxes and
// sequence ranges. Events are unsigned: the store trusts its callers, and signatures are not
// what is under test here.
const SEED = Number(process.env.ROOST_FUZZ_SEED ?? 20261121);
const NOW = 1_700_000_000;
const hex = (n: number, w = 64) => n.toString(16).padStart(w, '0');
const pubkeys = Array.from({ length: 6 }, (_, i) => hex(i + 1));
const kinds = [1, 4, 7, 1059, 1111, 30023 - 30000 + 1000];
const tagNames = ['p', 'e', 't', 'T'];
const tagValues = ['alpha', 'beta', 'gamma', pubkeys[0]!, pubkeys[1]!, pubkeys[2]!];
const PRIVATE = new Set([4, 1059]);

// The same fuzz for each backend: SQLite, and PostgreSQL on a throwaway server (the builder's
// PostgreSQL dialect), skipped only outside CI when its binaries are missing.
const pgSkip = postgresSkipReason();
if (pgSkip) console.warn(pgSkip);
const backends: Array<{ name: string; cases: number; skip: boolean; open(dir: string): Promise<EventStore> }> = [
  {
    name: 'sqlite',
    cases: 1500,
    skip: false,
    open: async (dir) => new SqliteStore({ path: join(dir, 'fuzz.db'), now: () => NOW, commitWindowMs: 0, syncMode: 'normal' }),
  },
  {
    name: 'postgres',
    cases: 600,
    skip: pgSkip !== undefined,
    async open() {
      server = await startPostgres({ fast: true });
      return PostgresStore.open({ url: await server.createDatabase(), now: () => NOW });
    },
  },
];
let server: PgServer | undefined;

describe.each(backends)('SQL filter builder vs matchFilter ($name)', (backend) => {
  const rng = createRng(SEED);
  let dir: string;
  let store: EventStore;
  const corpus: Array<NostrEvent & { seq: number; expires?: number }> = [];

  beforeAll(async () => {
    if (backend.skip) return;
    dir = mkdtempSync(join(tmpdir(), 'roost-fuzz-'));
    store = await backend.open(dir);
    const writes: Array<Promise<WriteResult>> = [];
    const written: NostrEvent[] = [];
    for (let i = 0; i < 600; i++) {
      const tags: string[][] = [];
      const nTags = rng.int(0, 4);
      for (let t = 0; t < nTags; t++) tags.push([rng.pick(tagNames), rng.pick(tagValues)]);
      if (rng.chance(0.1)) tags.push(['expiration', String(NOW + rng.int(-100, 100))]);
      const ev = {
        id: hex(i + 1000),
        pubkey: rng.pick(pubkeys),
        created_at: NOW - rng.int(0, 50), // many equal timestamps, to exercise the id tie-break
        kind: rng.pick(kinds),
        tags,
        content: '',
        sig: '0'.repeat(128),
      };
      written.push(ev);
      writes.push(store.write(ev as VerifiedEvent));
    }
    // Every event, expired ones included (reads hide those; sweepExpired is never run here).
    const results = await Promise.all(writes);
    await store.catchUp();
    results.forEach((r, i) => {
      if (r.status === 'stored') corpus.push({ ...written[i]!, seq: r.seq, expires: getExpiration(written[i]!) });
    });
  }, 60_000);

  afterAll(async () => {
    if (backend.skip) return;
    await store.close();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  function randomFilter(): Filter {
    const f: Filter = {};
    if (rng.chance(0.15))
      f.ids = rng.subset(
        corpus.map((e) => e.id),
        5,
      );
    if (rng.chance(0.4)) f.authors = rng.subset(pubkeys, 3);
    if (rng.chance(0.5)) f.kinds = rng.subset(kinds, 3);
    if (rng.chance(0.3)) f.since = NOW - rng.int(0, 50);
    if (rng.chance(0.3)) f.until = NOW - rng.int(0, 50);
    if (rng.chance(0.5)) f[`#${rng.pick(tagNames)}`] = rng.subset(tagValues, 3);
    if (rng.chance(0.2)) f[`#${rng.pick(tagNames)}`] = rng.subset(tagValues, 2);
    if (rng.chance(0.03)) f.authors = [];
    // Long lists are bound as one JSON array (json_each) rather than a variable per value.
    if (rng.chance(0.15)) {
      const pad = Array.from({ length: 40 }, (_, i) => `absent-${i}`);
      for (const key of Object.keys(f) as Array<keyof Filter>) {
        const v = f[key];
        if (Array.isArray(v) && v.length > 0)
          (f as Record<string, unknown>)[key] = typeof v[0] === 'number' ? [...v, ...pad.map((_, i) => 90000 + i)] : [...v, ...pad];
      }
    }
    return f;
  }

  const visible = (e: (typeof corpus)[number], viewer: Set<string>) => (e.expires === undefined || e.expires > NOW) && canRead(e, viewer, PRIVATE);

  it.skipIf(backend.skip)(
    `agrees on ${backend.cases} random filters (seed ${SEED})`,
    async () => {
      expect(corpus.length).toBe(600);
      let nonEmpty = 0;
      for (let i = 0; i < backend.cases; i++) {
        const filters = Array.from({ length: rng.chance(0.2) ? 2 : 1 }, randomFilter);
        const limits = filters.map(() => rng.int(0, 40));
        const viewer = new Set(rng.chance(0.5) ? rng.subset(pubkeys, 2) : []);
        const opts = { viewer: { pubkeys: [...viewer], privateKinds: [...PRIVATE] }, limits };
        const got = (await store.query(filters, opts)).map((r) => (JSON.parse(r.raw) as NostrEvent).id);
        const expected = new Map<string, NostrEvent>();
        filters.forEach((f, fi) => {
          corpus
            .filter((e) => matchFilter(f, e) && visible(e, viewer))
            .sort(compareEventsNewestFirst)
            .slice(0, limits[fi])
            .forEach((e) => expected.set(e.id, e));
        });
        const want = [...expected.values()].sort(compareEventsNewestFirst).map((e) => e.id);
        expect(got, `case ${i}: ${JSON.stringify({ filters, limits, viewer: [...viewer] })}`).toEqual(want);
        if (want.length > 0) nonEmpty++;

        // An answer's head read with its bodies (in the query): its first `max` events, and whether that is all.
        if (store.querySmall) {
          const max = (i % 24) + 1;
          const small = store.querySmall(filters, max, opts);
          const head = small.events.map((r) => (JSON.parse(r.raw) as NostrEvent).id);
          const what = `small case ${i} (max ${max}): ${JSON.stringify({ filters, limits, viewer: [...viewer] })}`;
          expect(head, what).toEqual(want.slice(0, max));
          expect(small.whole, what).toBe(want.length <= max);
        }

        const countAll = await store.count(filters, opts);
        const wantCount = corpus.filter((e) => filters.some((f) => matchFilter(f, e)) && visible(e, viewer)).length;
        expect(countAll, `count case ${i}`).toBe(wantCount);

        const after = rng.int(0, corpus.length);
        const until = rng.chance(0.3) ? after + rng.int(0, 200) : undefined;
        const pageLimit = rng.int(1, 60);
        const page = await store.querySeq(filters, after, until, pageLimit, opts);
        const seqWant = corpus
          .filter((e) => e.seq > after && (until === undefined || e.seq <= until) && filters.some((f) => matchFilter(f, e)) && visible(e, viewer))
          .map((e) => e.seq);
        expect(
          page.events.map((e) => e.seq),
          `seq case ${i}`,
        ).toEqual(seqWant.slice(0, pageLimit));
        expect(page.more).toBe(seqWant.length > pageLimit);
      }
      // The corpus and filters must actually exercise matches, or the test proves nothing.
      expect(nonEmpty).toBeGreaterThan(backend.cases / 5);
    },
    120_000,
  );
});
