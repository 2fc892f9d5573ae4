// Federation (issue 21), Roost only: replication catch-up of a backlog by sequence cursor vs a NIP-77 full sync,
// and NIP-77 round trips and bytes to reconcile two sets that differ by 1 % and 10 %.
//
// Catch-up: an upstream relay process holds N events (written to its database before it starts, not measured);
// a fresh replica process starts with ROOST_REPLICATE_FROM and, for the NIP-77 figure,
// ROOST_REPLICATE_FIRST_SYNC=negentropy. The time is read from the replica's own log: from its `replicating` line
// (connected) to its `replication caught up` line (every event verified and committed). Each run checks the
// replica stored exactly N events.
//
// Reconciliation: the codec (dist/shared/nip77.js) as initiator (60 000-byte frames, nostr-tools' default) against
// it as responder (65 536, the relay's default): rounds = messages the initiator sends, bytes = both directions
// before hex (the wire carries twice that). Protocol figures, independent of the machine.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeIdentity, signToJson } from '../lib/corpus.mjs';
import { makeRandom } from '../lib/random.mjs';
import { ROOT } from '../lib/relay-process.mjs';
import { sleep } from '../lib/stats.mjs';

/** Writes `n` signed events into a fresh Roost database folder (relay.db), as the upstream's backlog. */
async function seedUpstream(n, log) {
  const { SqliteStore } = await import(join(ROOT, 'dist/relay/store/sqlite.js'));
  const dir = mkdtempSync(join(tmpdir(), 'roost-bench-fed-'));
  const store = new SqliteStore({ path: join(dir, 'relay.db'), checkpointWorker: false, startupCheck: 'off' });
  const authors = Array.from({ length: 50 }, (_, i) => makeIdentity(`fed-author-${i}`));
  const base = Math.floor(Date.now() / 1000) - 86_400;
  const t0 = performance.now();
  const writes = [];
  for (let i = 0; i < n; i++) {
    const ev = JSON.parse(signToJson({ kind: 1, created_at: base + (i % 80_000), tags: [], content: `federation backlog ${i}` }, authors[i % authors.length]));
    writes.push(store.write(ev));
  }
  await Promise.all(writes);
  await store.close();
  log(`  federation: upstream backlog of ${n} events written in ${((performance.now() - t0) / 1000).toFixed(1)} s (not measured)`);
  return dir;
}

/** Reads the replica's log until it caught up; returns seconds from connected to caught up, and its stats. */
async function waitCaughtUp(dir, timeoutMs) {
  const start = Date.now();
  for (;;) {
    let text = '';
    try {
      text = readFileSync(join(dir, 'relay.log'), 'utf8');
    } catch {}
    const lines = text.split('\n').filter((l) => l.startsWith('{'));
    const from = lines.map((l) => JSON.parse(l)).find((o) => o.msg === 'replicating');
    const done = lines.map((l) => JSON.parse(l)).find((o) => o.msg === 'replication caught up; live');
    if (from && done) return { seconds: (done.time - from.time) / 1000, ...done };
    if (Date.now() - start > timeoutMs) throw new Error('replica did not catch up in time');
    await sleep(100);
  }
}

async function catchUp(upstreamUrl, mode, n, startRelay, log) {
  const env = { ROOST_REPLICATE_FROM: upstreamUrl, ROOST_REPLICATE_FIRST_SYNC: mode, ROOST_LOG_LEVEL: 'info' };
  const replica = await startRelay('roost', { env });
  try {
    const r = await waitCaughtUp(replica.dir, 600_000);
    const ok = r.stored === n && r.duplicates === 0;
    log(
      `  federation: catch-up by ${mode}: ${n} events in ${r.seconds.toFixed(2)} s = ${(n / r.seconds).toFixed(0)} events/s (stored ${r.stored}${ok ? '' : ', MISMATCH'})`,
    );
    return { mode, events: n, seconds: r.seconds, rate: n / r.seconds, stored: r.stored, ok };
  } finally {
    await replica.stop();
  }
}

/** Rounds and bytes for two seeded sets of `n` sharing all but `diff` of their items (half missing on each side). */
async function reconcile(n, diff) {
  const { Negentropy, NegentropySet } = await import(join(ROOT, 'dist/shared/nip77.js'));
  const rnd = makeRandom(Math.round(n * diff * 1000) + n);
  const hex = () =>
    Array.from({ length: 32 }, () =>
      Math.floor(rnd() * 256)
        .toString(16)
        .padStart(2, '0'),
    ).join('');
  const base = 1_700_000_000;
  const items = Array.from({ length: n }, () => ({ timestamp: base + Math.floor(rnd() * 30 * 86_400), id: hex() }));
  const apart = Math.round(n * diff);
  const onlyClient = new Set(items.slice(0, apart / 2).map((x) => x.id));
  const onlyRelay = new Set(items.slice(apart / 2, apart).map((x) => x.id));
  const client = new Negentropy(NegentropySet.from(items.filter((x) => !onlyRelay.has(x.id))), 'initiator', { frameSizeLimit: 60_000 });
  const relay = new Negentropy(NegentropySet.from(items.filter((x) => !onlyClient.has(x.id))), 'responder', { frameSizeLimit: 65_536 });
  let msg = client.initiate();
  let rounds = 0;
  let up = 0;
  let down = 0;
  let have = 0;
  let need = 0;
  const t0 = performance.now();
  while (msg !== undefined) {
    rounds++;
    up += msg.length;
    const answer = relay.respond(msg);
    down += answer.length;
    const r = client.reconcile(answer);
    have += r.have.length;
    need += r.need.length;
    msg = r.next;
  }
  const ms = performance.now() - t0;
  const ok = have === onlyClient.size && need === onlyRelay.size;
  return { n, diff, rounds, bytesUp: up, bytesDown: down, have, need, ok, cpuMs: ms };
}

/** Runs the federation figures; sizes from the harness (`federationEvents`). */
export async function runFederation({ size, startRelay, log }) {
  const n = size.federationEvents;
  const out = { reconcile: [], catchUp: [] };
  for (const diff of [0.01, 0.1]) {
    const r = await reconcile(n, diff);
    log(
      `  federation: NIP-77 ${n} events ${(diff * 100).toFixed(0)} % apart: ${r.rounds} round trips, ${(r.bytesUp / 1024).toFixed(1)} KiB up + ${(r.bytesDown / 1024).toFixed(1)} KiB down (binary; ×2 as hex), have ${r.have} need ${r.need}${r.ok ? '' : ' MISMATCH'}`,
    );
    out.reconcile.push(r);
  }
  const dir = await seedUpstream(n, log);
  const upstream = await startRelay('roost', { dbFrom: dir });
  try {
    for (const mode of ['cursor', 'negentropy']) out.catchUp.push(await catchUp(upstream.url, mode, n, startRelay, log));
  } finally {
    await upstream.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}
