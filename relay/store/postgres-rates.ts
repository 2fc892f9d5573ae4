import type pg from 'pg';
import type { RateExchange, RateExchangeResult, SharedRateStore } from './types.js';

const MINUTE_MS = 60_000;

/** Rows untouched this long are full again (a minute refills any bucket) and are deleted. */
const FORGET_MS = 2 * MINUTE_MS;

/**
 * Rate budgets in PostgreSQL (UNLOGGED tables `rate_budget`, `rate_instances`): each exchange is one
 * transaction that locks its rows in key order (two instances never deadlock), refills each bucket
 * for the time since it was last touched, charges credit, puts back unspent leases and grants up to
 * what leaves the reserve in place. A bucket's time only moves forward: an exchange stamped earlier
 * than the last one (a slower instance, a clock behind) refills nothing, so no time is counted twice.
 */
export function createPostgresRateStore(pool: pg.Pool, instance: string): SharedRateStore {
  let lastForget = 0;
  return {
    async exchange(rows: readonly RateExchange[], nowMs: number, aliveMs: number): Promise<RateExchangeResult> {
      await pool.query('INSERT INTO rate_instances (instance, seen_ms) VALUES ($1, $2) ON CONFLICT (instance) DO UPDATE SET seen_ms = excluded.seen_ms', [
        instance,
        nowMs,
      ]);
      const alive = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM rate_instances WHERE seen_ms > $1', [nowMs - aliveMs]);
      const instances = Math.max(1, alive.rows[0]!.n);
      if (nowMs - lastForget > MINUTE_MS) {
        lastForget = nowMs;
        await pool.query('DELETE FROM rate_instances WHERE seen_ms < $1', [nowMs - FORGET_MS]);
        await pool.query('DELETE FROM rate_budget WHERE at_ms < $1 AND tokens >= 0', [nowMs - FORGET_MS]);
      }
      if (rows.length === 0) return { granted: [], tokens: [], instances };
      // Key order: every instance locks rows in the same order.
      const order = rows.map((_, i) => i).sort((a, b) => cmp(rows[a]!, rows[b]!));
      const col = <K extends keyof RateExchange>(k: K) => order.map((i) => rows[i]![k]);
      const params = [col('bucket'), col('key'), col('cap'), col('charge'), col('back'), col('want'), col('reserve'), nowMs];
      const client = await pool.connect();
      let broken = false;
      try {
        await client.query('BEGIN');
        // Creates missing buckets (full) and locks every row, in key order.
        await client.query(
          `INSERT INTO rate_budget AS r (bucket, key, cap, tokens, at_ms)
           SELECT b, k, c, c, $3 FROM unnest($1::text[], $2::text[], $4::float8[]) WITH ORDINALITY AS t(b, k, c, o) ORDER BY o
           ON CONFLICT (bucket, key) DO UPDATE SET cap = excluded.cap`,
          [params[0], params[1], nowMs, params[2]],
        );
        const r = await client.query<{ bucket: string; key: string; granted: number; tokens: number }>(
          `UPDATE rate_budget AS r SET tokens = x.base - x.grant, granted = x.grant, at_ms = GREATEST(r.at_ms, $8)
           FROM (
             SELECT y.*, GREATEST(0, LEAST(y.want, y.base - y.reserve)) AS grant FROM (
               SELECT t.b, t.k, t.want, t.reserve,
                      LEAST(t.c, r0.tokens + GREATEST(0, $8 - r0.at_ms) * t.c / ${MINUTE_MS} + t.back) - t.charge AS base
               FROM unnest($1::text[], $2::text[], $3::float8[], $4::float8[], $5::float8[], $6::float8[], $7::float8[])
                    AS t(b, k, c, charge, back, want, reserve)
               JOIN rate_budget r0 ON r0.bucket = t.b AND r0.key = t.k
             ) y
           ) x
           WHERE r.bucket = x.b AND r.key = x.k
           RETURNING r.bucket, r.key, r.granted, r.tokens`,
          params,
        );
        await client.query('COMMIT');
        const byKey = new Map(r.rows.map((x) => [`${x.bucket}\n${x.key}`, x]));
        const granted: number[] = [];
        const tokens: number[] = [];
        for (const row of rows) {
          const got = byKey.get(`${row.bucket}\n${row.key}`);
          granted.push(got ? Number(got.granted) : 0);
          tokens.push(got ? Number(got.tokens) : 0);
        }
        return { granted, tokens, instances };
      } catch (err) {
        await client.query('ROLLBACK').catch(() => (broken = true));
        throw err;
      } finally {
        client.release(broken);
      }
    },
  };
}

function cmp(a: RateExchange, b: RateExchange): number {
  if (a.bucket !== b.bucket) return a.bucket < b.bucket ? -1 : 1;
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}
