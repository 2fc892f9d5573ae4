import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getRateCredit, SharedRateBudget, type SharedBuckets } from '../../../relay/policies/shared-rate-limit.js';
import { createPostgresRateStore } from '../../../relay/store/postgres-rates.js';
import { PostgresStore } from '../../../relay/store/postgres.js';
import { createPgDatabase } from '../../helpers/backends.js';
import { postgresSkipReason } from '../../helpers/postgres.js';
import { createRng } from '../../helpers/prng.js';

// The cluster-wide rate budget against its bound (docs/limits.md), on a real PostgreSQL: three
// instances' buckets spend one key's budget under a seeded schedule of takes, refunds and
// exchanges (some overlapping takes), on a clock the test moves.
const skip = postgresSkipReason();
if (skip) console.warn(skip);

const N = 3;

describe.skipIf(skip !== undefined)('shared rate budget (three instances on one PostgreSQL)', () => {
  let pool: pg.Pool;
  beforeAll(async () => {
    const url = await createPgDatabase();
    // Migrates the database.
    await (await PostgresStore.open({ url })).close();
    pool = new pg.Pool({ connectionString: url, max: 6 });
  }, 60_000);
  afterAll(async () => {
    await pool?.end();
  });

  const open = async (tag: string, clock: { now: number }) => {
    // Each case runs on a clock of its own: instances of earlier cases must not count as alive.
    await pool.query('DELETE FROM rate_instances');
    const budgets: SharedRateBudget[] = [];
    for (let i = 0; i < N; i++) {
      budgets.push(await SharedRateBudget.open({ store: createPostgresRateStore(pool, `${tag}-${i}`), nowMs: () => clock.now, intervalMs: 0 }));
    }
    // Every instance has seen the others alive.
    for (const b of budgets) await b.exchange();
    for (const b of budgets) expect(b.instances).toBe(N);
    return budgets;
  };

  /** Runs a seeded schedule; returns how many tokens the three instances admitted. */
  const run = async (
    key: string,
    seed: number,
    buckets: SharedBuckets[],
    budgets: SharedRateBudget[],
    clock: { now: number },
    steps: number,
    msPerStep: number,
  ) => {
    const rng = createRng(seed);
    let admitted = 0;
    const flights: Promise<void>[] = [];
    for (let step = 0; step < steps; step++) {
      clock.now += msPerStep;
      const i = rng.int(0, N - 1);
      const roll = rng.next();
      if (roll < 0.12) {
        // An exchange, sometimes left on its way while takes go on.
        const p = budgets[i]!.exchange();
        if (rng.chance(0.5)) await p;
        else flights.push(p);
      } else if (roll < 0.17) {
        if (buckets[i]!.take(key)) buckets[i]!.refund(key);
      } else if (buckets[i]!.has(key) && buckets[i]!.take(key)) admitted++;
    }
    await Promise.all(flights);
    return admitted;
  };

  it('a frozen clock: the three admit at most the budget, and at least all but the reserve', async () => {
    const C = 120;
    for (const seed of [1, 2, 3, 4]) {
      const clock = { now: 1_000_000 + seed * 10_000_000 };
      const budgets = await open(`frozen-${seed}`, clock);
      const buckets = budgets.map((b) => b.makeBuckets('events_per_pubkey', C) as SharedBuckets);
      const admitted = await run(`frozen-${seed}`, seed, buckets, budgets, clock, 3000, 0);
      expect(admitted).toBeLessThanOrEqual(C);
      expect(admitted).toBeGreaterThanOrEqual(C - (N - 1) * getRateCredit(C, N));
      for (const b of budgets) await b.close();
    }
  }, 60_000);

  it('a moving clock: at most C + r·T + N·⌈C/240⌉ over the run', async () => {
    const C = 600;
    for (const seed of [5, 6]) {
      const clock = { now: 5_000_000 + seed * 10_000_000 };
      const start = clock.now;
      const budgets = await open(`moving-${seed}`, clock);
      const buckets = budgets.map((b) => b.makeBuckets('events_per_pubkey', C) as SharedBuckets);
      // 6000 steps of 5 ms: 30 s, an exchange per instance every ~125 ms.
      const admitted = await run(`moving-${seed}`, seed, buckets, budgets, clock, 6000, 5);
      const elapsed = clock.now - start;
      expect(admitted).toBeLessThanOrEqual(C + (C * elapsed) / 60_000 + N * Math.ceil(C / 240));
      expect(admitted).toBeGreaterThan(C);
      for (const b of budgets) await b.close();
    }
  }, 60_000);

  it('what an instance holds goes back at close: the bucket is down by exactly what was spent', async () => {
    const clock = { now: 90_000_000 };
    const budgets = await open('close', clock);
    const b = budgets[0]!.makeBuckets('events_per_ip', 40) as SharedBuckets;
    let n = 0;
    while (n < 25) {
      while (n < 25 && b.take('ip')) n++;
      await budgets[0]!.exchange();
    }
    for (const x of budgets) await x.close();
    const rows = await pool.query<{ tokens: number }>("SELECT tokens FROM rate_budget WHERE bucket = 'events_per_ip' AND key = 'ip'");
    expect(Number(rows.rows[0]!.tokens)).toBe(40 - 25);
  });
});
