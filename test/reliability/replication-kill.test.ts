import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { loadOrCreateRelayIdentity } from '../../relay/identity.js';
import { makeKey } from '../helpers/events.js';
import { spawnRelay } from '../helpers/process.js';
import { startRelay, type TestRelay } from '../helpers/relay.js';
import { waitFor } from '../helpers/wait.js';
import { makeEvents, seed, storedIds } from '../relay/federation/helpers.js';

const N = 20_000;

/** The ids and the replication cursor in a (stopped) relay's database. */
function readReplica(db: string): { ids: string[]; cursor: number | undefined } {
  const d = new BetterSqlite3(db);
  try {
    const ids = (d.prepare('SELECT id FROM events').pluck().all() as string[]).sort();
    const cursor = d.prepare('SELECT cursor FROM replication_cursors').pluck().get() as number | undefined;
    return { ids, cursor };
  } finally {
    d.close();
  }
}

/** The `replication caught up` log line of a relay process, parsed. */
function caughtUp(output: string): { pulled: number; stored: number; duplicates: number } | undefined {
  const line = output.split('\n').find((l) => l.includes('replication caught up'));
  return line ? (JSON.parse(line) as { pulled: number; stored: number; duplicates: number }) : undefined;
}

describe('replication survives SIGKILL of the replica', () => {
  let a: TestRelay;
  const dir = mkdtempSync(join(tmpdir(), 'roost-repl-kill-'));
  afterAll(async () => {
    await a?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('relay B replicating A, killed mid-stream and restarted, ends with exactly A’s events and fetches no stored event twice', async () => {
    a = await startRelay();
    await seed(a, makeEvents([makeKey(), makeKey(), makeKey()], N, 'kill'));
    const dbB = join(dir, 'b.db');
    const bKey = loadOrCreateRelayIdentity(dbB).pubkey;
    // Every stored event A writes to B's connections (B authenticates as its relay key).
    let sentToB = 0;
    a.relay.ctx.hooks.onDelivered.push((conn) => {
      if (conn.authed.has(bKey)) sentToB++;
    });
    const env = { ROOST_DB: dbB, ROOST_REPLICATE_FROM: a.url, ROOST_DB_STARTUP_CHECK: 'off' };

    const first = await spawnRelay(env);
    // Killed once a tenth is committed (read from B's database while it writes).
    await waitFor(() => sentToB > 0, 'B is pulling', 30_000);
    const reader = new BetterSqlite3(dbB, { readonly: true });
    const count = reader.prepare('SELECT count(*) FROM events').pluck();
    await waitFor(() => (count.get() as number) >= N / 10, 'B has committed a tenth', 30_000);
    reader.close();
    first.child.kill('SIGKILL');
    await first.exited;
    const atKill = readReplica(dbB);
    // Killed mid-stream: some but not all events committed, and the cursor names the last committed one.
    expect(atKill.ids.length).toBeGreaterThan(0);
    expect(atKill.ids.length).toBeLessThan(N);
    const sentBeforeRestart = sentToB;

    const second = await spawnRelay(env);
    await waitFor(() => caughtUp(second.output()) !== undefined, 'B caught up after restart', 60_000);
    const stats = caughtUp(second.output())!;
    second.child.kill('SIGTERM');
    await second.exited;

    const final = readReplica(dbB);
    expect(final.ids).toEqual(storedIds(a));
    // Nothing B had committed was fetched again: the restart pulled exactly the rest.
    expect(stats.duplicates).toBe(0);
    expect(stats.pulled).toBe(N - atKill.ids.length);
    expect(stats.stored).toBe(N - atKill.ids.length);
    // What A sent in all: every event once, plus those in flight (sent, not yet committed) at the kill.
    const refetched = sentToB - N;
    expect(refetched).toBe(sentBeforeRestart - atKill.ids.length);
    console.log(`killed after ${atKill.ids.length}/${N} committed; ${refetched} in flight at the kill were sent again, 0 committed events refetched`);
  }, 120_000);
});
