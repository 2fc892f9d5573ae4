import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type pg from 'pg';
import { assertKnownMigrations, findMigrationsDir, type Migration } from './migrate.js';

/** Reads migrations/postgres/NNNN_name.sql in version order. */
export function readPostgresMigrations(dir = join(findMigrationsDir(), 'postgres')): Migration[] {
  return readdirSync(dir)
    .filter((f) => /^\d{4}_[\w-]+\.sql$/.test(f))
    .sort()
    .map((f) => ({ version: Number(f.slice(0, 4)), name: f, sql: readFileSync(join(dir, f), 'utf8') }));
}

/** Any fixed number: the advisory lock that lets one instance migrate while the others wait. */
const MIGRATION_LOCK = 0x526f6f7374;

/**
 * Applies every PostgreSQL migration not yet recorded, all in one transaction under an advisory
 * lock (instances starting together migrate once). Refuses a schema newer than this build knows.
 */
export async function migratePostgres(client: pg.ClientBase, migrations: readonly Migration[] = readPostgresMigrations()): Promise<number[]> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`);
    const applied = new Set((await client.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) => r.version));
    assertKnownMigrations(applied, migrations);
    const done: number[] = [];
    for (const m of migrations) {
      if (applied.has(m.version)) continue;
      await client.query(m.sql);
      await client.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [m.version, m.name, Math.floor(Date.now() / 1000)]);
      done.push(m.version);
    }
    await client.query('COMMIT');
    return done;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
