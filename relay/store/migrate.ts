import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Database } from 'better-sqlite3';
import { RoostError } from '../config.js';

/** One forward-only migration file. */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** Finds the repository's migrations/ folder from the source or the compiled tree. */
export function findMigrationsDir(from = dirname(fileURLToPath(import.meta.url))): string {
  let dir = from;
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'migrations');
    if (existsSync(join(candidate, '0001_events.sql'))) return candidate;
    dir = dirname(dir);
  }
  throw new RoostError('ROOST_ERR_MIGRATIONS_MISSING', `migrations folder not found above ${from}`);
}

/** Reads `NNNN_name.sql` files in version order. */
export function readMigrations(dir = findMigrationsDir()): Migration[] {
  return readdirSync(dir)
    .filter((f) => /^\d{4}_[\w-]+\.sql$/.test(f))
    .sort()
    .map((f) => ({ version: Number(f.slice(0, 4)), name: f, sql: readFileSync(join(dir, f), 'utf8') }));
}

/**
 * Applies every migration not yet recorded, each in its own transaction. Refuses a database whose
 * recorded schema is newer than this build knows (ROOST_ERR_SCHEMA_NEWER).
 */
export function migrate(db: Database, migrations: readonly Migration[] = readMigrations()): number[] {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`);
  const applied = new Set((db.prepare('SELECT version FROM schema_migrations').all() as Array<{ version: number }>).map((r) => r.version));
  assertKnownMigrations(applied, migrations);
  const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
  const done: number[] = [];
  for (const m of migrations) {
    if (applied.has(m.version)) continue;
    db.transaction(() => {
      db.exec(m.sql);
      record.run(m.version, m.name, Math.floor(Date.now() / 1000));
    })();
    done.push(m.version);
  }
  return done;
}

/** Refuses a database that a newer Roost migrated: it holds migrations this version does not know. */
export function assertKnownMigrations(applied: ReadonlySet<number>, migrations: ReadonlyArray<{ version: number }>): void {
  const known = new Set(migrations.map((m) => m.version));
  const unknown = [...applied].filter((v) => !known.has(v));
  if (unknown.length > 0) {
    throw new RoostError(
      'ROOST_ERR_SCHEMA_NEWER',
      `database schema has migrations ${unknown.join(', ')} that this version of Roost does not know; upgrade Roost`,
    );
  }
}
