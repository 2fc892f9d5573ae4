import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import type { NostrEvent } from '../../shared/event.js';
import { makeKey, nowSeconds, signEvent } from '../helpers/events.js';
import { createRng } from '../helpers/prng.js';
import { spawnRelay } from '../helpers/process.js';
import { RawClient } from '../helpers/raw-client.js';

// Crash durability: publishers at full speed, the relay killed with SIGKILL at a random moment,
// restarted on the same database, many cycles. Every event that got OK true must be there, and
// the database must pass PRAGMA integrity_check. CI runs a reduced form; `npm run test:soak` the full one.
const SOAK = process.env.ROOST_SOAK === '1';
const CYCLES = SOAK ? 25 : 3;
const PUBLISHERS = 4;
const IN_FLIGHT = 32;

describe('crash durability', () => {
  const dir = mkdtempSync(join(tmpdir(), 'roost-crash-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it(
    `loses no acknowledged event across ${CYCLES} SIGKILL cycles`,
    async () => {
      const db = join(dir, 'crash.db');
      const rng = createRng(SOAK ? Date.now() : 42);
      const author = makeKey();
      const acked = new Set<string>();
      let sent = 0;
      let peakRssKiB = 0;
      for (let cycle = 0; cycle < CYCLES; cycle++) {
        const relay = await spawnRelay({ ROOST_DB: db, ROOST_LOG_LEVEL: 'info', ROOST_MAX_LIMIT: '1000000' });
        const clients = await Promise.all(Array.from({ length: PUBLISHERS }, () => RawClient.connect(relay.url)));
        let killed = false;
        const pump = async (c: RawClient) => {
          // Keep IN_FLIGHT events outstanding until the relay dies under us.
          const pending = new Map<string, NostrEvent>();
          c.ws.on('message', (data) => {
            const f = JSON.parse(data.toString()) as unknown[];
            if (f[0] === 'OK' && pending.has(f[1] as string)) {
              if (f[2] === true) acked.add(f[1] as string);
              pending.delete(f[1] as string);
            }
          });
          while (!killed && !c.closed) {
            while (pending.size < IN_FLIGHT) {
              const e = signEvent(author, { content: `c${cycle} n${sent++}`, created_at: nowSeconds() });
              pending.set(e.id, e);
              c.send(['EVENT', e]);
            }
            await new Promise((r) => setTimeout(r, 2));
          }
        };
        const pumps = clients.map(pump);
        await new Promise((r) => setTimeout(r, rng.int(150, 700)));
        peakRssKiB = Math.max(peakRssKiB, readPeakRssKiB(relay.child.pid!));
        relay.child.kill('SIGKILL');
        killed = true;
        await relay.exited;
        await Promise.all(pumps);
      }
      expect(acked.size).toBeGreaterThan(CYCLES * 50);

      const check = new BetterSqlite3(db);
      expect(check.pragma('integrity_check', { simple: true })).toBe('ok');
      check.close();

      const relay = await spawnRelay({ ROOST_DB: db, ROOST_MAX_LIMIT: '1000000' });
      const c = await RawClient.connect(relay.url);
      const stored = new Set((await c.req('all', { authors: [author.pk], limit: 1_000_000 })).map((e) => e.id));
      const lost = [...acked].filter((id) => !stored.has(id));
      console.log(
        `crash: ${CYCLES} cycles, ${sent} events sent, ${acked.size} acknowledged, ${stored.size} stored, ${lost.length} lost, relay peak RSS ${(peakRssKiB / 1024).toFixed(0)} MiB`,
      );
      expect(lost).toEqual([]);
      c.close();
      relay.child.kill('SIGTERM');
      expect(await relay.exited).toBe(0);
    },
    SOAK ? 600_000 : 90_000,
  );
});

/** The process's peak resident set (VmHWM), in KiB. */
function readPeakRssKiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}
