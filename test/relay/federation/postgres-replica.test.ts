import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { makeKey, signEvent } from '../../helpers/events.js';
import { freePort, spawnRelay } from '../../helpers/process.js';
import { postgresSkipReason, startPostgres, type PgServer } from '../../helpers/postgres.js';
import { RawClient } from '../../helpers/raw-client.js';
import { startRelay, type TestRelay } from '../../helpers/relay.js';
import { waitFor } from '../../helpers/wait.js';
import { fast, makeEvents, seed, statsOf, storedIds, tempDirs } from './helpers.js';

// Replication's core cases with a PostgreSQL relay as the replica (its upstream is SQLite): catch-up by
// cursor and resumption after either side restarts with nothing fetched twice, a ring that does not echo
// (origin chains kept in the events' rows), and SIGKILL of the replica process mid-stream: the cursor
// committed with the events, so the restart pulls exactly what was not committed.
const skip = postgresSkipReason();
if (skip) console.warn(skip);
const tempDir = tempDirs('roost-fed-pg-');

/** Every stored event id of a relay on any store, sorted. */
async function idsOf(t: TestRelay): Promise<string[]> {
  const page = await t.relay.ctx.store.querySeq([{}], 0, undefined, 10_000_000);
  return page.events.map((e) => (JSON.parse(e.raw) as { id: string }).id).sort();
}

describe.skipIf(skip !== undefined)('replication into PostgreSQL', () => {
  let server: PgServer;
  beforeAll(async () => {
    server = await startPostgres({ fast: true });
  }, 60_000);
  afterAll(async () => server?.stop());

  it('B (PostgreSQL) replicating A catches up by cursor, goes live, and resumes after either side restarts, fetching nothing twice', async () => {
    const db = await server.createDatabase();
    const keys = [makeKey(), makeKey()];
    const portA = await freePort();
    const dirA = tempDir();
    let a = await startRelay({ port: portA }, {}, dirA);
    await seed(a, makeEvents(keys, 300, 'backlog'));
    let b = await startRelay({ db, replicateFrom: a.url }, fast);
    // The stats count a write once its commit has answered (the rows are visible a moment before).
    await waitFor(() => statsOf(b).stored === 300, 'backlog replicated');
    expect(await idsOf(b)).toEqual(storedIds(a));
    expect(statsOf(b)).toMatchObject({ pulled: 300, stored: 300, duplicates: 0, rejected: 0 });
    await waitFor(() => statsOf(b).live, 'live');

    const client = await RawClient.connect(a.url);
    const live = signEvent(keys[0]!, { content: 'live' });
    expect((await client.publish(live))[2]).toBe(true);
    client.close();
    await waitFor(async () => (await idsOf(b)).includes(live.id), 'live event replicated');

    // B stops; A takes more; B comes back on the same database and pulls exactly the new events.
    await b.close();
    await seed(a, makeEvents(keys, 100, 'while-b-down'));
    b = await startRelay({ db, replicateFrom: a.url }, fast);
    await waitFor(() => statsOf(b).stored === 100, 'caught up after B restart');
    expect(await idsOf(b)).toEqual(storedIds(a));
    expect(statsOf(b)).toMatchObject({ pulled: 100, stored: 100, duplicates: 0 });

    // A restarts; B reconnects and resumes after A's newest event.
    await a.close({ keep: true });
    a = await startRelay({ port: portA }, {}, dirA);
    await seed(a, makeEvents(keys, 50, 'after-a-restart'));
    await waitFor(() => statsOf(b).stored === 150, 'caught up after A restart');
    expect(await idsOf(b)).toEqual(storedIds(a));
    expect(statsOf(b)).toMatchObject({ pulled: 150, stored: 150, duplicates: 0 });
    // The cursor row names A's newest event.
    const c = new pg.Client({ connectionString: db });
    await c.connect();
    const cursor = (await c.query<{ cursor: string }>('SELECT cursor FROM replication_cursors')).rows.map((r) => Number(r.cursor));
    await c.end();
    expect(cursor).toEqual([a.relay.ctx.store.lastSeq()]);
    await b.close();
    await a.close();
  }, 60_000);

  it('A ⇄ B (PostgreSQL) converge and no event comes back to where it came from', async () => {
    const [portA, portB] = [await freePort(), await freePort()];
    const a = await startRelay({ port: portA, replicateFrom: `ws://127.0.0.1:${portB}` }, fast, tempDir());
    const b = await startRelay({ port: portB, db: await server.createDatabase(), replicateFrom: `ws://127.0.0.1:${portA}` }, fast);
    const keys = [makeKey()];
    const ca = await RawClient.connect(a.url);
    const cb = await RawClient.connect(b.url);
    const onA = makeEvents(keys, 100, 'a');
    const onB = makeEvents(keys, 100, 'b');
    await Promise.all([...onA.map((e) => ca.publish(e)), ...onB.map((e) => cb.publish(e))]);
    await waitFor(() => statsOf(a).stored === 100 && statsOf(b).stored === 100, 'both have everything');
    expect(await idsOf(b)).toEqual(storedIds(a));
    // Give an echo time to happen, then count: each side pulled exactly the other's events.
    await new Promise((r) => setTimeout(r, 500));
    expect(statsOf(a)).toMatchObject({ pulled: 100, stored: 100, duplicates: 0 });
    expect(statsOf(b)).toMatchObject({ pulled: 100, stored: 100, duplicates: 0 });
    ca.close();
    cb.close();
    await a.close();
    await b.close();
  }, 60_000);

  it('B (a PostgreSQL relay process) killed mid-stream and restarted ends with exactly A’s events and fetches no stored event twice', async () => {
    const N = 6000;
    const a = await startRelay();
    await seed(a, makeEvents([makeKey(), makeKey(), makeKey()], N, 'kill'));
    const db = await server.createDatabase();
    const env = { ROOST_DB: db, ROOST_REPLICATE_FROM: a.url };
    const reader = new pg.Client({ connectionString: db });
    const readB = async () => {
      const ids = (await reader.query<{ id: string }>('SELECT id FROM events')).rows.map((r) => r.id).sort();
      const cursor = (await reader.query<{ cursor: string }>('SELECT cursor FROM replication_cursors')).rows[0]?.cursor;
      return { ids, cursor: cursor === undefined ? undefined : Number(cursor) };
    };
    const caughtUp = (output: string) => {
      const line = output.split('\n').find((l) => l.includes('replication caught up'));
      return line ? (JSON.parse(line) as { pulled: number; stored: number; duplicates: number }) : undefined;
    };

    const first = await spawnRelay(env);
    await reader.connect();
    await waitFor(async () => (await readB()).ids.length >= N / 10, 'B has committed a tenth', 30_000);
    first.child.kill('SIGKILL');
    await first.exited;
    const atKill = await readB();
    expect(atKill.ids.length).toBeGreaterThan(0);
    expect(atKill.ids.length).toBeLessThan(N);
    // The cursor names the last committed event: A's seqs are 1…N in the order B stores them.
    expect(atKill.cursor).toBe(atKill.ids.length);

    const second = await spawnRelay(env);
    await waitFor(() => caughtUp(second.output()) !== undefined, 'B caught up after restart', 60_000);
    const stats = caughtUp(second.output())!;
    second.child.kill('SIGTERM');
    await second.exited;
    const final = await readB();
    await reader.end();
    expect(final.ids).toEqual(storedIds(a));
    expect(stats.duplicates).toBe(0);
    expect(stats.pulled).toBe(N - atKill.ids.length);
    expect(stats.stored).toBe(N - atKill.ids.length);
    await a.close();
  }, 120_000);
});
