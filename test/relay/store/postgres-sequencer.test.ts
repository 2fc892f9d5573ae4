import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VerifiedEvent } from '../../../shared/event.js';
import { PostgresStore } from '../../../relay/store/postgres.js';
import { createPgDatabase, stopPgServer } from '../../helpers/backends.js';
import { postgresSkipReason } from '../../helpers/postgres.js';
import { createRng } from '../../helpers/prng.js';

// The sequencer across instances: several stores (separate pools, as separate relay processes
// have) write at once on one database, with seeded random delays injected between allocating their
// sequence numbers and committing. Every instance's tail (what feeds its live fan-out) and every
// instance's cursor reader (what a client's seq_after resumption reads) must see every sequence
// number exactly once, in order, with no gap. Were numbers allocated outside commit order (a plain
// BIGSERIAL), a reader would pass a number whose transaction had not committed yet and lose it.
const SEED = Number(process.env.ROOST_FUZZ_SEED ?? 20261205);
const skip = postgresSkipReason();
if (skip) console.warn(skip);

const hex = (n: number) => n.toString(16).padStart(64, '0');
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe.skipIf(skip !== undefined)('PostgreSQL sequencer', () => {
  let url: string;
  beforeAll(async () => {
    url = await createPgDatabase();
  }, 60_000);
  afterAll(stopPgServer);

  it(`hands out gap-free, commit-ordered numbers to 4 writing instances (seed ${SEED})`, async () => {
    const rng = createRng(SEED);
    const INSTANCES = 4;
    const PER_INSTANCE = 250;
    const tails: number[][] = [];
    const stores: PostgresStore[] = [];
    for (let i = 0; i < INSTANCES + 1; i++) {
      const seen: number[] = [];
      tails.push(seen);
      stores.push(
        await PostgresStore.open({
          url,
          poolSize: 4,
          pollMs: 50,
          onStored: (_ev, seq) => seen.push(seq),
          // The window a BIGSERIAL leaves open: numbers taken, commit still to come.
          beforeCommit: () => sleep(rng.int(0, 6)),
        }),
      );
    }
    // Cursor readers, one per instance (the last instance only reads), polling while writes run.
    let writing = true;
    const cursorSeen: number[][] = stores.map(() => []);
    const readers = stores.map(async (s, i) => {
      let cursor = 0;
      for (;;) {
        const done = !writing;
        const page = await s.querySeq([{}], cursor, undefined, 37);
        for (const e of page.events) cursorSeen[i]!.push(e.seq);
        cursor = page.cursor;
        if (done && !page.more) {
          // Everything was committed before this page was asked for: it ended at the end.
          await s.catchUp();
          const last = await s.querySeq([{}], cursor, undefined, 1000);
          for (const e of last.events) cursorSeen[i]!.push(e.seq);
          return;
        }
        if (!page.more) await sleep(rng.int(0, 3));
      }
    });
    const writes: Array<Promise<{ status: string; seq?: number }>> = [];
    const writers = stores.slice(0, INSTANCES).map(async (s, w) => {
      let n = 0;
      while (n < PER_INSTANCE) {
        const burst = Math.min(PER_INSTANCE - n, rng.int(1, 30));
        for (let k = 0; k < burst; k++, n++) {
          const ev = {
            id: hex(w * 100_000 + n + 1),
            pubkey: hex(w + 1),
            created_at: 1_700_000_000 + n,
            kind: 1,
            tags: [['p', hex(9)]],
            content: `${w}:${n}`,
            sig: '0'.repeat(128),
          };
          writes.push(s.write(ev as VerifiedEvent));
        }
        await sleep(rng.int(0, 8));
      }
    });
    await Promise.all(writers);
    const results = await Promise.all(writes);
    writing = false;
    await Promise.all(readers);
    for (const s of stores) await s.catchUp();

    const TOTAL = INSTANCES * PER_INSTANCE;
    const all = Array.from({ length: TOTAL }, (_, i) => i + 1);
    expect(results.every((r) => r.status === 'stored')).toBe(true);
    expect(results.map((r) => r.seq).sort((a, b) => a! - b!)).toEqual(all);
    for (let i = 0; i < stores.length; i++) {
      expect(tails[i], `tail of instance ${i}`).toEqual(all);
      expect(cursorSeen[i], `cursor reader on instance ${i}`).toEqual(all);
    }
    for (const s of stores) await s.close();
  }, 120_000);
});
