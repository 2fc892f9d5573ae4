import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { buildRelay, type Relay, type RelayDeps } from '../../relay/app.js';
import { loadConfig, type ConfigInput } from '../../relay/config.js';

/** A relay listening on 127.0.0.1 with a fresh SQLite file. */
export interface TestRelay {
  url: string;
  httpUrl: string;
  port: number;
  dbPath: string;
  dir: string;
  relay: Relay;
  /** Closes the relay; removes its folder unless `keep` is set. */
  close(opts?: { keep?: boolean }): Promise<void>;
}

/** Starts a real relay on an ephemeral port (config overrides and injected deps allowed). */
export async function startRelay(overrides: ConfigInput = {}, deps: RelayDeps = {}, dir?: string): Promise<TestRelay> {
  const folder = dir ?? mkdtempSync(join(tmpdir(), 'roost-test-'));
  const dbPath = (overrides.db as string | undefined) ?? join(folder, 'roost.db');
  // Rate limits are off unless a test turns them on: every test client shares 127.0.0.1, and the
  // limits have tests of their own (test/relay/operator/limits.test.ts).
  const config = loadConfig({ port: 0, host: '127.0.0.1', logLevel: 'silent', commitWindowMs: 1, rateLimit: false, ...overrides, db: dbPath });
  const relay = await buildRelay(config, { log: pino({ level: process.env.ROOST_TEST_LOG ?? 'silent' }), ...deps });
  const address = await relay.app.listen({ port: config.port, host: '127.0.0.1' });
  const port = Number(new URL(address).port);
  return {
    url: `ws://127.0.0.1:${port}`,
    httpUrl: `http://127.0.0.1:${port}`,
    port,
    dbPath,
    dir: folder,
    relay,
    async close(opts = {}) {
      await relay.close();
      if (!opts.keep && !dir) rmSync(folder, { recursive: true, force: true });
    },
  };
}
