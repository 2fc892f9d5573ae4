import type pg from 'pg';
import type { MailboxStorage } from '../mailbox/index.js';
import { buildRetentionQueries } from '../mailbox/retention.js';
import type { ReplayedReads } from '../policies/later-reads.js';
import { toPostgresPlaceholders } from './postgres.js';

/** How long an admitted event's place counts while it is verified and stored. */
const ADMISSION_SECONDS = 60;
/** Events removed per statement of a retention sweep (as on SQLite). */
const SWEEP_BATCH = 2000;

/**
 * The agent mailbox on the cluster's database (migration 0011): the same ledger, quota questions,
 * refusal notices, sequence marks and retention as on SQLite. The quota policy's questions are asked
 * through replayed reads (they answer inside a policy run); writes answer later. Every instance raises
 * the same ledger rows with GREATEST, so a delivered seq is never lowered by an instance that knew less.
 */
export function createPostgresMailboxStorage(pool: pg.Pool, replayed: ReplayedReads): MailboxStorage {
  const one = async <T extends pg.QueryResultRow>(sql: string, params: unknown[]) => (await pool.query<T>(sql, params)).rows[0];
  return {
    replayed,
    ledger: {
      loadsAnywhere: false,
      load: (pubkey) =>
        replayed.read(
          `mb:load:${pubkey}`,
          async () => (await one<{ s: number }>('SELECT delivered_seq AS s FROM mailbox_delivery WHERE pubkey = $1', [pubkey]))?.s ?? 0,
        ),
      // Tags are one row per distinct (seq, name, value) here: no GROUP BY needed.
      count: (pubkey, afterSeq, now) =>
        replayed.read(
          `mb:count:${pubkey}:${afterSeq}`,
          async () =>
            (
              await one<{ n: number }>(
                `SELECT count(*) AS n FROM tags t JOIN events e ON e.seq = t.seq
                 WHERE t.name = 'p' AND t.value = $1 AND t.seq > $2 AND (e.expires_at IS NULL OR e.expires_at > $3)`,
                [pubkey, afterSeq, now],
              )
            )?.n ?? 0,
        ),
      async save(entries, now) {
        await pool.query(
          `INSERT INTO mailbox_delivery (pubkey, delivered_seq, updated_at) SELECT unnest($1::text[]), unnest($2::bigint[]), $3
           ON CONFLICT (pubkey) DO UPDATE SET delivered_seq = GREATEST(mailbox_delivery.delivered_seq, excluded.delivered_seq), updated_at = excluded.updated_at`,
          [entries.map((e) => e[0]), entries.map((e) => e[1]), now],
        );
      },
      async backlog(now) {
        const r = await one<{ waiting: number; undelivered: number; agents: number }>(
          `SELECT (SELECT count(*) FROM mailbox_delivery) AS agents, count(DISTINCT m.pubkey) AS waiting, count(*) AS undelivered
           FROM mailbox_delivery m
           JOIN tags t ON t.name = 'p' AND t.value = m.pubkey AND t.seq > m.delivered_seq
           JOIN events e ON e.seq = t.seq
           WHERE e.expires_at IS NULL OR e.expires_at > $1`,
          [now],
        );
        return { agents: r?.agents ?? 0, waiting: r?.waiting ?? 0, undelivered: r?.undelivered ?? 0 };
      },
    },
    senders: {
      async mark(now, pruneBefore) {
        await pool.query(
          `INSERT INTO seq_marks (at, seq) VALUES ($1, (SELECT coalesce(max(seq), 0) FROM events))
           ON CONFLICT (at) DO UPDATE SET seq = GREATEST(seq_marks.seq, excluded.seq)`,
          [now],
        );
        await pool.query('DELETE FROM seq_marks WHERE at < $1', [pruneBefore]);
      },
      markBefore: async (at) => (await one<{ seq: number }>('SELECT seq FROM seq_marks WHERE at <= $1 ORDER BY at DESC LIMIT 1', [at]))?.seq ?? 0,
      hasEventAtOrBelow: (pubkey, seq) =>
        replayed.read(
          `mb:has:${pubkey}:${seq}`,
          async () => (await one<{ x: boolean }>('SELECT EXISTS (SELECT 1 FROM events WHERE pubkey = $1 AND seq <= $2) AS x', [pubkey, seq]))?.x ?? false,
        ),
    },
    isContact: (recipient, sender) =>
      replayed.read(
        `mb:contact:${recipient}:${sender}`,
        async () =>
          (
            await one<{ x: boolean }>(
              `SELECT EXISTS (SELECT 1 FROM events e JOIN tags t ON t.seq = e.seq
               WHERE e.pubkey = $1 AND e.kind = 3 AND t.name = 'p' AND t.value = $2) AS x`,
              [recipient, sender],
            )
          )?.x ?? false,
      ),
    senderHolds: (recipient, afterSeq, sender) =>
      replayed.read(
        `mb:holds:${recipient}:${afterSeq}:${sender}`,
        async () =>
          (
            await one<{ n: number }>(
              `SELECT count(*) AS n FROM tags t JOIN events e ON e.seq = t.seq
               WHERE t.name = 'p' AND t.value = $1 AND t.seq > $2 AND e.pubkey = $3`,
              [recipient, afterSeq, sender],
            )
          )?.n ?? 0,
      ),
    async admit(places, id, now) {
      const client = await pool.connect();
      let broken = false;
      try {
        await client.query('BEGIN');
        // One recipient at a time, in one order on every instance (no deadlock between two events naming the same two).
        for (const r of [...places].sort((x, y) => (x.recipient < y.recipient ? -1 : 1)))
          await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`roost-mailbox:${r.recipient}`]);
        // Under the locks: stored undelivered mail plus what other events hold places for and have not stored yet.
        const counted = await client.query<{ recipient: string; n: number; ceiling: number }>(
          `SELECT r.recipient, r.ceiling,
             (SELECT count(*) FROM tags t JOIN events e ON e.seq = t.seq
               WHERE t.name = 'p' AND t.value = r.recipient
                 AND t.seq > GREATEST(r.delivered, coalesce((SELECT delivered_seq FROM mailbox_delivery WHERE pubkey = r.recipient), 0))
                 AND (e.expires_at IS NULL OR e.expires_at > $4))
           + (SELECT count(*) FROM mailbox_admissions a
               WHERE a.recipient = r.recipient AND a.id <> $5 AND a.at > $6
                 AND NOT EXISTS (SELECT 1 FROM events WHERE id = a.id)) AS n
           FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS r(recipient, delivered, ceiling)`,
          [places.map((p) => p.recipient), places.map((p) => p.delivered), places.map((p) => p.ceiling), now, id, now - ADMISSION_SECONDS],
        );
        const full = counted.rows.find((r) => r.n >= r.ceiling);
        if (full) {
          await client.query('ROLLBACK');
          return full.recipient;
        }
        await client.query(
          `INSERT INTO mailbox_admissions (recipient, id, at) SELECT unnest($1::text[]), $2, $3
           ON CONFLICT (recipient, id) DO UPDATE SET at = excluded.at`,
          [places.map((p) => p.recipient), id, now],
        );
        await client.query('DELETE FROM mailbox_admissions WHERE at <= $1', [now - ADMISSION_SECONDS]);
        await client.query('COMMIT');
        return undefined;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => (broken = true));
        throw err;
      } finally {
        client.release(broken);
      }
    },
    async releaseAdmission(id) {
      await pool.query('DELETE FROM mailbox_admissions WHERE id = $1', [id]);
    },
    async saveRefused(entries) {
      if (entries.length === 0) return;
      await pool.query(
        `INSERT INTO mailbox_refused (pubkey, refused, since) SELECT unnest($1::text[]), unnest($2::bigint[]), unnest($3::bigint[])
         ON CONFLICT (pubkey) DO UPDATE SET refused = mailbox_refused.refused + excluded.refused`,
        [entries.map((e) => e[0]), entries.map((e) => e[1]), entries.map((e) => e[2])],
      );
    },
    takeRefused: async (pubkey) => one<{ refused: number; since: number }>('DELETE FROM mailbox_refused WHERE pubkey = $1 RETURNING refused, since', [pubkey]),
    async sweepRetention(rules, now, opts, maxBatches = Number.POSITIVE_INFINITY) {
      let removed = 0;
      let batches = 0;
      for (const q of buildRetentionQueries(rules, opts)) {
        const sql = toPostgresPlaceholders(q.sql.replaceAll('CROSS JOIN', 'JOIN'));
        const cutoff = now - q.seconds;
        for (;;) {
          if (batches >= maxBatches) return { removed, done: false };
          const seqs = (await pool.query<{ seq: number }>(sql, [...q.params, cutoff])).rows.map((r) => r.seq);
          if (seqs.length === 0) break;
          batches++;
          // The tags go with their event (ON DELETE CASCADE).
          await pool.query('DELETE FROM events WHERE seq = ANY($1::bigint[])', [seqs]);
          removed += seqs.length;
          if (seqs.length < SWEEP_BATCH) break;
        }
      }
      return { removed, done: true };
    },
  };
}
