import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConfigInput } from '../../relay/config.js';
import { SqliteStore } from '../../relay/store/sqlite.js';
import { startRelay, type TestRelay } from './relay.js';
import { makeLateStore } from './stores.js';

/** A store backend the shared wire tests run against. */
export interface TestBackend {
  name: string;
  /** Starts a relay on this backend (a fresh database). */
  start(overrides?: ConfigInput): Promise<TestRelay>;
}

/** SQLite (the default), and a store that answers every read a few turns later. */
export function testBackends(): TestBackend[] {
  return [
    { name: 'sqlite', start: (o) => startRelay(o) },
    {
      name: 'late reads',
      async start(o = {}) {
        const folder = mkdtempSync(join(tmpdir(), 'roost-test-'));
        const store = new SqliteStore({ path: join(folder, 'roost.db'), commitWindowMs: 1 });
        return startRelay(o, { store: makeLateStore(store) }, folder);
      },
    },
  ];
}
