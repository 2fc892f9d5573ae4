import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Relay, useWebSocketImplementation } from 'nostr-tools/relay';
import type { NostrEvent } from '../../../shared/event.js';
import { makeKey, type Key } from '../../helpers/events.js';
import { authenticate, signFast } from '../../helpers/mailbox.js';
import { createRng } from '../../helpers/prng.js';
import { RawClient } from '../../helpers/raw-client.js';
import { startRelay } from '../../helpers/relay.js';
import { createPgDatabase } from '../../helpers/backends.js';
import { postgresSkipReason } from '../../helpers/postgres.js';
import { waitFor } from '../../helpers/wait.js';

useWebSocketImplementation(WebSocket);

// Eight publishers at full speed while twenty agents keep dropping their connections and resuming
// from their cursors (tail mode or paging, closing politely or cutting the socket mid-backfill).
// Every agent must end with every event addressed to it exactly once, in seq order. Bounded:
// 3200 events, a deadline, and agents stop once they hold everything.
const SEED = Number(process.env.ROOST_FUZZ_SEED ?? 3);
const PUBLISHERS = 8;
const PER_PUBLISHER = 400;
const AGENTS = 20;
const DEADLINE_MS = 45_000;
/** Every agent drops and resumes at least this many times. */
const MIN_SESSIONS = 5;
const WINDOW = 8;

interface AgentState {
  key: Key;
  cursor: number;
  received: string[];
  seqs: number[];
  violations: string[];
  sessions: number;
  /** Sessions that resumed (sent their REQ) while publishers were still running. */
  duringLoad: number;
}

/** One connection of an agent: AUTH, resume from the cursor, read for a while, then drop. */
async function session(url: string, a: AgentState, rng: ReturnType<typeof createRng>, underLoad: () => boolean): Promise<void> {
  const c = await RawClient.connect(url);
  a.sessions++;
  try {
    await authenticate(c, a.key, url);
  } catch {
    c.ws.terminate();
    return;
  }
  const paging = rng.chance(0.3);
  const pageLimit = rng.int(3, 15);
  const stopAfterEvents = rng.int(1, 25);
  const stopAfterMs = rng.int(2, 60);
  let got = 0;
  const req = () => c.send(['REQ', 'inbox', { '#p': [a.key.pk], kinds: [1, 4], seq_after: a.cursor, ...(paging ? { limit: pageLimit } : {}) }]);
  if (underLoad()) a.duringLoad++;
  let finish!: () => void;
  const finished = new Promise<void>((r) => (finish = r));
  c.ws.on('message', (data) => {
    const f = JSON.parse(data.toString()) as unknown[];
    if (f[1] !== 'inbox') return;
    if (f[0] === 'EVENT') {
      const seq = (f[3] as { seq: number }).seq;
      if (!(seq > a.cursor)) a.violations.push(`seq ${seq} after cursor ${a.cursor}`);
      a.cursor = seq;
      a.seqs.push(seq);
      a.received.push((f[2] as NostrEvent).id);
      if (++got >= stopAfterEvents) finish();
    } else if (f[0] === 'EOSE') {
      const { cursor, more } = f[2] as { cursor: number; more: boolean };
      if (cursor < a.cursor) a.violations.push(`EOSE cursor ${cursor} behind ${a.cursor}`);
      a.cursor = Math.max(a.cursor, cursor);
      if (paging && more) req();
    } else if (f[0] === 'CLOSED') {
      a.violations.push(`CLOSED ${String(f[2])}`);
      finish();
    }
  });
  const timer = setTimeout(finish, stopAfterMs);
  req();
  await finished;
  clearTimeout(timer);
  const closed = new Promise<void>((r) => c.ws.once('close', () => r()));
  if (rng.chance(0.5)) c.ws.terminate();
  else c.close();
  await closed;
}

// On SQLite, and on a cluster of three relays on one PostgreSQL database where every publisher
// and every session of an agent picks an instance at random (so agents resume on another one).
const pgSkip = postgresSkipReason();
if (pgSkip) console.warn(pgSkip);
const backends = [
  { name: 'sqlite', start: async () => [await startRelay({ mailboxQuota: 0 })] },
  ...(pgSkip
    ? []
    : [
        {
          name: 'postgres, 3 instances',
          async start() {
            const db = await createPgDatabase();
            return [await startRelay({ db, mailboxQuota: 0 }), await startRelay({ db, mailboxQuota: 0 }), await startRelay({ db, mailboxQuota: 0 })];
          },
        },
      ]),
];

describe.each(backends)('resume under load ($name)', (backend) => {
  it(`20 agents dropping and resuming while 8 publishers run at full speed (seed ${SEED})`, async () => {
    const relays = await backend.start();
    const t = relays[0]!;
    const rng = createRng(SEED);
    const deadline = Date.now() + DEADLINE_MS;
    try {
      const agents: AgentState[] = Array.from({ length: AGENTS }, () => ({
        key: makeKey(),
        cursor: 0,
        received: [],
        seqs: [],
        violations: [],
        sessions: 0,
        duringLoad: 0,
      }));
      const batches = Array.from({ length: PUBLISHERS }, () => {
        const key = makeKey();
        return Array.from({ length: PER_PUBLISHER }, (_, i) => {
          if (rng.chance(0.1)) return { to: undefined, ev: signFast(key, { content: `noise ${i}` }) };
          const to = rng.int(0, AGENTS - 1);
          const kind = rng.chance(0.5) ? 4 : 1;
          return { to, ev: signFast(key, { kind, content: `${i}`, tags: [['p', agents[to]!.key.pk]] }) };
        });
      });
      const expected = agents.map(() => new Set<string>());

      let publishing = true;
      const publishers = batches.map(async (batch, p) => {
        const relay = await Relay.connect(relays[p % relays.length]!.url);
        // Full speed: each publisher keeps WINDOW events unacknowledged; together they keep the
        // relay's verifier saturated, and a larger window would only queue more in front of the
        // agents' reconnects.
        for (let i = 0; i < batch.length; i += WINDOW) {
          const window = batch.slice(i, i + WINDOW);
          await Promise.all(
            window.map(async ({ to, ev }) => {
              await relay.publish(ev);
              if (to !== undefined) expected[to]!.add(ev.id);
            }),
          );
        }
        relay.close();
      });

      const runners = agents.map(async (a, i) => {
        const own = createRng(SEED * 1000 + i);
        while (Date.now() < deadline) {
          await session(relays[own.int(0, relays.length - 1)]!.url, a, own, () => publishing);
          if (publishing) continue;
          if (a.sessions >= MIN_SESSIONS && expected[i]!.size === new Set(a.received).size) break;
        }
      });

      const t0 = Date.now();
      await Promise.all(publishers);
      publishing = false;
      const t1 = Date.now();
      await Promise.all(runners);
      console.log(
        `published in ${t1 - t0} ms, done in ${Date.now() - t0} ms; sessions resumed under load per agent:`,
        agents.map((a) => a.duringLoad).join(','),
      );

      const total = expected.reduce((n, s) => n + s.size, 0);
      expect(total).toBeGreaterThan(2500);
      agents.forEach((a, i) => {
        expect(a.violations, `agent ${i}`).toEqual([]);
        expect(a.received.length, `agent ${i} duplicates`).toBe(new Set(a.received).size);
        expect(new Set(a.received), `agent ${i}`).toEqual(expected[i]);
        expect(a.seqs).toEqual([...a.seqs].sort((x, y) => x - y));
        expect(a.sessions).toBeGreaterThanOrEqual(MIN_SESSIONS);
        expect(a.duringLoad, `agent ${i} resumed under load`).toBeGreaterThanOrEqual(2);
      });
      // Delivery accounting agrees: nothing addressed to any agent is left undelivered.
      if (!t.relay.mailbox) return;
      await waitFor(async () => (await Promise.all(agents.map((a) => t.relay.mailbox!.status(a.key.pk)))).every((s) => s.undelivered === 0), 'ledger');
      for (const a of agents) expect((await t.relay.mailbox!.status(a.key.pk)).deliveredSeq).toBe(a.seqs.at(-1));
      expect(await t.relay.mailbox!.backlog()).toMatchObject({ agents: AGENTS, waiting: 0, undelivered: 0 });
    } finally {
      for (const r of relays) await r.close();
    }
  }, 60_000);
});
