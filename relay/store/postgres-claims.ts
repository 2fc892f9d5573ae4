import type pg from 'pg';
import type { PolicyClaims } from './types.js';

/** How long a claim holds before another event may take it over (its instance died or stalled). */
export const CLAIM_SECONDS = 60;

/**
 * Policy claims in PostgreSQL (table policy_claims): all of an event's keys in one transaction, so an
 * event holds either all of them or none. Two instances inserting the same key are serialised by the
 * primary key: the second waits for the first's transaction and then sees its row.
 */
export function createPostgresClaims(pool: pg.Pool): PolicyClaims {
  return {
    async claim(keys, id, now) {
      const client = await pool.connect();
      let broken = false;
      try {
        await client.query('BEGIN');
        const got = await client.query<{ key: string }>(
          `INSERT INTO policy_claims (key, id, at) SELECT unnest($1::text[]), $2, $3
           ON CONFLICT (key) DO UPDATE SET id = excluded.id, at = excluded.at
             WHERE policy_claims.id = excluded.id OR policy_claims.at < $4
           RETURNING key`,
          [keys, id, now, now - CLAIM_SECONDS],
        );
        if (got.rowCount === keys.length) {
          // Stale claims of other events go with a successful claim (they are rare: one per key event or task step).
          await client.query('DELETE FROM policy_claims WHERE at < $1', [now - CLAIM_SECONDS]);
          await client.query('COMMIT');
          return undefined;
        }
        const taken = await client.query<{ key: string; id: string }>('SELECT key, id FROM policy_claims WHERE key = ANY($1::text[]) AND id <> $2 LIMIT 1', [
          keys,
          id,
        ]);
        await client.query('ROLLBACK');
        const row = taken.rows[0];
        return row ? { key: row.key, holder: row.id } : { key: keys[0]!, holder: 'another event' };
      } catch (err) {
        await client.query('ROLLBACK').catch(() => (broken = true));
        throw err;
      } finally {
        client.release(broken);
      }
    },
    async release(keys, id) {
      await pool.query('DELETE FROM policy_claims WHERE key = ANY($1::text[]) AND id = $2', [keys, id]);
    },
  };
}
