import type pg from 'pg';

/**
 * A wake registration follows its agent's key event log on a shared database (as `PushWake.followKey`
 * on SQLite): once a rotation or revocation from `from` to `to` is stored, `to` gets `from`'s channels,
 * unless it registered itself. One statement, so the instances that all see the stored rotation copy
 * them once: the owner row is inserted only when absent, and the channels only by the statement that
 * inserted it. Returns how many channels were copied.
 */
export async function followKeyShared(pool: pg.Pool, from: string, to: string, eventCreated: number, nowMs: number): Promise<number> {
  const r = await pool.query(
    `WITH o AS (
       INSERT INTO push_owners (owner, event_created)
       SELECT $2, $3 WHERE EXISTS (SELECT 1 FROM push_channels WHERE owner = $1)
       ON CONFLICT (owner) DO NOTHING RETURNING owner)
     INSERT INTO push_channels (owner, platform, token, topic, environment, mode, registered_at)
     SELECT o.owner, c.platform, c.token, c.topic, c.environment, c.mode, $4 FROM push_channels c, o WHERE c.owner = $1
     ON CONFLICT DO NOTHING`,
    [from, to, eventCreated, nowMs],
  );
  return r.rowCount ?? 0;
}
