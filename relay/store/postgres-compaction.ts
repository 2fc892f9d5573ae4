import type pg from 'pg';
import { DocKind, getClockRange, isRangeCovered } from '../../shared/crdt-events.js';
import type { NostrEvent } from '../../shared/event.js';
import type { CompactionJob, CompactionStep } from '../crdt/compaction.js';
import type { DocCompaction } from './types.js';

/**
 * Shared-document compaction on PostgreSQL: the rule of relay/crdt/compaction.ts (a delta whose clock
 * range the snapshot's state vector covers gets the expiry the NIP-40 sweep honours), as statements on
 * the cluster's tables. Setting an expiry is idempotent (`expires_at IS NULL`), so two instances
 * compacting the same document would only repeat each other.
 */
export function createPostgresDocCompaction(pool: pg.Pool): DocCompaction {
  return {
    async step(job: CompactionJob, afterSeq: number, pageSize = 1000): Promise<CompactionStep> {
      // Keyset walk of the (name, value, seq) tag index: a page costs the same at any depth.
      const rows = (
        await pool.query<{ seq: number; raw: string }>(
          `SELECT e.seq AS seq, e.raw AS raw FROM tags t JOIN events e ON e.seq = t.seq
            WHERE t.name = 'a' AND t.value = $1 AND t.seq > $2 AND t.seq < $3
              AND e.kind = ${DocKind.Update} AND e.expires_at IS NULL
            ORDER BY t.seq LIMIT $4`,
          [job.address, afterSeq, job.beforeSeq, pageSize],
        )
      ).rows;
      const covered: number[] = [];
      for (const row of rows) {
        const clock = getClockRange(JSON.parse(row.raw) as NostrEvent);
        if (clock && isRangeCovered(clock, job.stateVector)) covered.push(row.seq);
      }
      if (covered.length > 0)
        await pool.query('UPDATE events SET expires_at = $1 WHERE seq = ANY($2::bigint[]) AND expires_at IS NULL', [job.expiresAt, covered]);
      const lastSeq = rows.length > 0 ? rows[rows.length - 1]!.seq : afterSeq;
      return { marked: covered.length, lastSeq, done: rows.length < pageSize };
    },
    async expireStaleParts(address, author, generation, expiresAt) {
      const rows = (
        await pool.query<{ seq: number; raw: string }>(
          `SELECT e.seq AS seq, e.raw AS raw FROM tags t JOIN events e ON e.seq = t.seq
            WHERE t.name = 'a' AND t.value = $1 AND e.kind = ${DocKind.Snapshot} AND e.pubkey = $2 AND e.expires_at IS NULL`,
          [address, author],
        )
      ).rows;
      const stale = rows.filter((row) => (JSON.parse(row.raw) as NostrEvent).tags.find((t) => t[0] === 'part')?.[3] !== generation).map((row) => row.seq);
      if (stale.length === 0) return 0;
      const r = await pool.query('UPDATE events SET expires_at = $1 WHERE seq = ANY($2::bigint[]) AND expires_at IS NULL', [expiresAt, stale]);
      return r.rowCount ?? 0;
    },
  };
}
