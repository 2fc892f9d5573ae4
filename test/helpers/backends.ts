import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RelayDeps } from '../../relay/app.js';
import type { ConfigInput } from '../../relay/config.js';
import { SqliteStore } from '../../relay/store/sqlite.js';
import { startRelay, type TestRelay } from './relay.js';
import { makeLateStore } from './stores.js';
import { postgresSkipReason, startPostgres, type PgServer } from './postgres.js';
import { afterAll } from 'vitest';

/** A store backend the shared wire tests run against. */
export interface TestBackend {
  name: string;
  /** Starts a relay on this backend (a fresh database). */
  start(overrides?: ConfigInput, deps?: RelayDeps): Promise<TestRelay>;
}

let server: Promise<PgServer> | undefined;

/**
 * SQLite (the default), a store that answers every read a few turns later, and PostgreSQL (one
 * throwaway server per test file, a fresh database per relay; left out, with a warning, only
 * outside CI when PostgreSQL is not installed). Call at the top level of a test file.
 */
export function testBackends(opts: { late?: boolean } = {}): TestBackend[] {
  const pgSkip = postgresSkipReason();
  if (pgSkip) console.warn(pgSkip);
  else afterAll(stopPgServer);
  const all: TestBackend[] = [
    { name: 'sqlite', start: (o, d) => startRelay(o, d) },
    {
      name: 'late reads',
      async start(o = {}, d = {}) {
        const folder = mkdtempSync(join(tmpdir(), 'roost-test-'));
        const store = new SqliteStore({ path: join(folder, 'roost.db'), commitWindowMs: 1 });
        return startRelay(o, { ...d, store: makeLateStore(store) }, folder);
      },
    },
    {
      name: 'postgres',
      async start(o = {}, d = {}) {
        return startRelay({ ...o, db: await createPgDatabase() }, d);
      },
    },
  ];
  return all.filter((b) => (b.name !== 'late reads' || opts.late !== false) && (b.name !== 'postgres' || pgSkip === undefined));
}

/** Stops this test file's PostgreSQL server, if one was started (an `afterAll` of files using {@link createPgDatabase}). */
export async function stopPgServer(): Promise<void> {
  const s = server;
  server = undefined;
  await (await s)?.stop();
}

/** A fresh database on this test file's PostgreSQL server (started on first use). */
export async function createPgDatabase(): Promise<string> {
  server ??= startPostgres({ fast: true });
  return (await server).createDatabase();
}
