import type pg from 'pg';
import type { StorageFigures } from '../operator/figures.js';

/**
 * The dashboard's storage figures on PostgreSQL: stored events and the database's size, read at most
 * every `ttlMs` in the background (the sampler asks synchronously, once a second) and shown from the
 * last answer. The write-ahead log is the server's, shared with whatever else it holds: shown as 0.
 */
export function createPostgresStorageProbe(pool: pg.Pool, onError: (err: unknown) => void, ttlMs = 5000): () => StorageFigures {
  let last: StorageFigures = { events: 0, bytes: 0, walBytes: 0 };
  let readAt = -Infinity;
  let reading = false;
  return () => {
    const now = Date.now();
    if (!reading && now - readAt >= ttlMs) {
      reading = true;
      readAt = now;
      pool
        .query<{ events: number; bytes: number }>('SELECT (SELECT count(*) FROM events) AS events, pg_database_size(current_database()) AS bytes')
        .then((r) => void (last = { events: r.rows[0]!.events, bytes: r.rows[0]!.bytes, walBytes: 0 }), onError)
        .finally(() => (reading = false));
    }
    return last;
  };
}
