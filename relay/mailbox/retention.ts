import type { Database } from 'better-sqlite3';
import type { RetentionRule } from './retention-rules.js';

/** Events removed per transaction, so a large sweep never holds the writer for long. */
const SWEEP_BATCH = 2000;

/** How retention is applied. */
export interface RetentionOptions {
  /** Keep events still undelivered to a p-tagged agent that has a ledger row. */
  keepUndelivered: boolean;
}

function kindCondition(rule: RetentionRule, params: number[]): string {
  if (!rule.kinds) return 'TRUE';
  const parts = rule.kinds.map(([lo, hi]) => {
    params.push(lo, hi);
    return '(e.kind BETWEEN ? AND ?)';
  });
  return `(${parts.join(' OR ')})`;
}

/**
 * Compiles the rules, first match wins, into one `SELECT seq` per rule: that rule's kinds, none of
 * an earlier rule's, older than its age. Rules after a catch-all never apply and are dropped.
 */
export function buildRetentionQueries(rules: readonly RetentionRule[], opts: RetentionOptions): Array<{ sql: string; params: number[]; seconds: number }> {
  const out: Array<{ sql: string; params: number[]; seconds: number }> = [];
  const earlier: RetentionRule[] = [];
  for (const rule of rules) {
    const params: number[] = [];
    const where = [kindCondition(rule, params)];
    for (const prev of earlier) where.push(`NOT ${kindCondition(prev, params)}`);
    where.push('e.created_at < ?');
    if (opts.keepUndelivered) {
      where.push(`NOT EXISTS (SELECT 1 FROM tags t CROSS JOIN mailbox_delivery m ON m.pubkey = t.value
        WHERE t.seq = e.seq AND t.name = 'p' AND m.delivered_seq < e.seq)`);
    }
    out.push({ sql: `SELECT e.seq FROM events e WHERE ${where.join(' AND ')} LIMIT ${SWEEP_BATCH}`, params, seconds: rule.seconds });
    if (!rule.kinds) break;
    earlier.push(rule);
  }
  return out;
}

/**
 * Deletes events past their kind's retention age (by created_at), at most `maxBatches` batches of
 * SWEEP_BATCH (each its own transaction); returns how many were removed and whether nothing is left.
 */
export function sweepRetention(
  db: Database,
  rules: readonly RetentionRule[],
  now: number,
  opts: RetentionOptions,
  maxBatches = Number.POSITIVE_INFINITY,
): { removed: number; done: boolean } {
  const delTags = db.prepare('DELETE FROM tags WHERE seq = ?');
  const delEvent = db.prepare('DELETE FROM events WHERE seq = ?');
  let removed = 0;
  let batches = 0;
  for (const q of buildRetentionQueries(rules, opts)) {
    const select = db.prepare(q.sql).pluck();
    const cutoff = now - q.seconds;
    for (;;) {
      if (batches >= maxBatches) return { removed, done: false };
      const seqs = select.all(...q.params, cutoff) as number[];
      if (seqs.length === 0) break;
      batches++;
      db.transaction(() => {
        for (const seq of seqs) {
          delTags.run(seq);
          delEvent.run(seq);
        }
      })();
      removed += seqs.length;
      if (seqs.length < SWEEP_BATCH) break;
    }
  }
  return { removed, done: true };
}
