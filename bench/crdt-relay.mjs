#!/usr/bin/env node
/**
 * A newcomer joining a shared document through the real relay (a spawned Roost process on 127.0.0.1).
 *
 * Seeding (once, cached in .bench-cache/crdt-relay/): five agents write N signed deltas (default 10,000)
 * to one relay-enforced document, the same workload mix as bench/crdt.mjs; deltas 1..N-TAIL are
 * acknowledged before the last TAIL are sent, so the owner's snapshot taken after delta N-TAIL can
 * say "everything up to seq S". The database is copied into a fresh relay for every run.
 *
 * Measured, each with a fresh agent (own SQLite home, synchronous=FULL) already connected: from
 * `agent.doc(name)` to `whenSynced()` with the state equal to the writers', and the bytes the relay
 * sent it meanwhile (WebSocket frames):
 *   1. no snapshot: every delta;
 *   2. the owner's snapshot after delta N-TAIL (cursor tag for this relay) + the TAIL deltas after it;
 *   3. the owner's final snapshot only.
 * The relay compacts behind each owner snapshot (grace 0 here), and the table says how many deltas
 * it still serves.
 *
 *   npm run build && node bench/crdt-relay.mjs [--deltas 10000] [--tail 1000] [--runs 3] [--seed 1]
 */
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { Identity, createNodeAgent } from '../dist/client/node/index.js';
import { createSharedDoc, makeDocAddress, makeMembershipEvent, makeSnapshotEvents, makeUpdateEvent } from '../dist/client/crdt/index.js';
import { decodeBase64, encodeBase64 } from '../dist/client/crdt/base64.js';
import { CACHE_DIR, makeRandom as makeRng } from './lib/corpus.mjs';
import { ROOT, releaseDir, startRelay } from './lib/relay-process.mjs';

const args = Object.fromEntries(process.argv.slice(2).flatMap((a, i, all) => (a.startsWith('--') ? [[a.slice(2), Number(all[i + 1])]] : [])));
const DELTAS = args.deltas ?? 10_000;
const TAIL = args.tail ?? 1_000;
const RUNS = args.runs ?? 3;
const SEED = args.seed ?? 1;
const AGENTS = 5;
const NAME = 'mesh';
const started = performance.now();

const keyOf = (i) => Identity.fromSecretKey(createHash('sha256').update(`roost-bench-crdt-relay:${SEED}:${i}`).digest('hex'));
const writers = Array.from({ length: AGENTS }, (_, i) => keyOf(i));
const owner = writers[0];
const ADDRESS = makeDocAddress(owner.pubkey, NAME);

// --- a raw publisher: EVENT frames with a window, resolved when every OK is in -----------------------------
async function openSocket(url) {
  const ws = new WebSocket(url);
  await new Promise((res, rej) => ws.once('open', res).once('error', rej));
  return ws;
}

async function publishAll(url, events, window = 64) {
  const ws = await openSocket(url);
  let next = 0;
  let answered = 0;
  const refused = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`publish: ${answered}/${events.length} answered`)), 120_000);
    const send = () => {
      while (next < events.length && next - answered < window) ws.send(JSON.stringify(['EVENT', events[next++]]));
    };
    ws.on('message', (data) => {
      const f = JSON.parse(data.toString());
      if (f[0] !== 'OK') return;
      answered++;
      if (!f[2] && !String(f[3]).startsWith('duplicate:')) refused.push(f[3]);
      if (answered === events.length) {
        clearTimeout(timer);
        resolve();
      } else send();
    });
    send();
  });
  ws.close();
  if (refused.length) throw new Error(`relay refused ${refused.length} events, e.g. ${refused[0]}`);
}

/** The newest committed seq: an empty page of a seq query answers with it as its EOSE cursor. */
async function newestSeq(url) {
  const ws = await openSocket(url);
  const seq = await new Promise((resolve) => {
    ws.on('message', (data) => {
      const f = JSON.parse(data.toString());
      if (f[0] === 'EOSE') resolve(f[2].cursor);
    });
    ws.send(JSON.stringify(['REQ', 'newest', { ids: ['0'.repeat(64)], seq_after: 0, limit: 1 }]));
  });
  ws.close();
  return seq;
}

// --- seeding (cached) -----------------------------------------------------------------------------------
function hashTree(hash, path) {
  const full = join(ROOT, path);
  if (!existsSync(full)) return hash.update(`missing:${path}`);
  if (statSync(full).isDirectory()) for (const n of readdirSync(full).sort()) hashTree(hash, join(path, n));
  else hash.update(path).update(readFileSync(full));
  return hash;
}

async function seed(dir) {
  const rng = makeRng(SEED);
  const pick = (n) => Math.floor(rng() * n);
  // A day ago, so the relay's created_at limits accept every event (the state does not depend on it).
  const start = (Math.floor(Date.now() / 1000) - 86_400) * 1000;
  let clock = start;
  const members = writers.map((w) => w.pubkey);
  const docs = writers.map((w, i) =>
    createSharedDoc({ docId: ADDRESS, self: w.pubkey, membership: { owner: owner.pubkey, members }, clientId: 100 + i, now: () => clock }),
  );
  const events = [];
  docs.forEach((doc, i) =>
    doc.connect({
      publish: (update, meta) => {
        events.push(writers[i].sign(makeUpdateEvent(ADDRESS, update, meta.clock, Math.floor(clock / 1000))));
        for (const other of docs) if (other !== doc) other.receive(update, { author: meta.author });
      },
    }),
  );
  let snapAt;
  while (events.length < DELTAS) {
    clock += 250;
    const doc = docs[pick(AGENTS)];
    const k = pick(100);
    const r = rng();
    if (r < 0.4) doc.status().set(['mood', 'energy', 'focus'][pick(3)], r < 0.2 ? Math.round(rng() * 100) / 100 : ['calm', 'busy', 'curious'][pick(3)]);
    else if (r < 0.65)
      doc.map('tasks').set(`task-${k}`, { state: ['todo', 'doing', 'done'][pick(3)], owner: doc.self.slice(-8), note: `step ${events.length}` });
    else if (r < 0.7) doc.map('tasks').delete(`task-${k}`);
    else if (r < 0.8) rng() < 0.6 ? doc.set('peers').add(`peer-${k}`) : doc.set('peers').remove(`peer-${k}`);
    else doc.counters('trust').increment(members[pick(AGENTS)], 1 + pick(3));
    if (events.length >= DELTAS - TAIL && !snapAt) snapAt = { snap: docs[0].snapshot(), count: events.length };
  }
  const relay = await startRelay('roost');
  try {
    const record = owner.sign(makeMembershipEvent(NAME, members.slice(1), Math.floor(start / 1000) - 60, { enforce: true }));
    await publishAll(relay.url, [record, ...events.slice(0, snapAt.count)]);
    const cursorAtSnapshot = await newestSeq(relay.url);
    await publishAll(relay.url, events.slice(snapAt.count));
    const cursorFinal = await newestSeq(relay.url);
    const final = docs[0].snapshot();
    const meta = {
      deltas: events.length,
      deltaJsonBytes: events.reduce((n, e) => n + JSON.stringify(e).length, 0),
      snapshotAfter: snapAt.count,
      cursorAtSnapshot,
      cursorFinal,
      snapshot: { update: encodeBase64(snapAt.snap.update), sv: [...snapAt.snap.stateVector] },
      final: { update: encodeBase64(final.update), sv: [...final.stateVector] },
      expected: JSON.stringify(docs[0].toJSON()),
      createdAt: Math.floor(clock / 1000),
    };
    const kept = await relay.stop({ keep: true });
    mkdirSync(dir, { recursive: true });
    for (const f of readdirSync(kept)) if (f.startsWith('relay.db')) cpSync(join(kept, f), join(dir, f));
    rmSync(kept, { recursive: true, force: true });
    releaseDir(kept);
    writeFileSync(join(dir, 'meta.json'), JSON.stringify(meta));
    writeFileSync(join(dir, 'complete'), '');
  } catch (err) {
    await relay.stop();
    throw err;
  }
}

// Bump SEED_FORMAT when seed() changes what it writes; the store and CRDT code are hashed.
const SEED_FORMAT = 1;
const key = hashTree(createHash('sha256').update(`${SEED_FORMAT}:${DELTAS}:${TAIL}:${SEED}`), 'migrations');
for (const p of ['dist/relay/store', 'dist/client/crdt']) hashTree(key, p);
const cacheDir = join(CACHE_DIR, 'crdt-relay', key.digest('hex').slice(0, 16));
let seeded = 'reused';
if (!existsSync(join(cacheDir, 'complete'))) {
  rmSync(cacheDir, { recursive: true, force: true });
  const t = performance.now();
  await seed(cacheDir);
  seeded = `built in ${((performance.now() - t) / 1000).toFixed(1)} s`;
}
const meta = JSON.parse(readFileSync(join(cacheDir, 'meta.json'), 'utf8'));

// --- the newcomer ---------------------------------------------------------------------------------------
let received = { bytes: 0, frames: 0, events: 0 };
class CountingWebSocket extends WebSocket {
  constructor(url) {
    super(url);
    this.on('message', (data) => {
      received.bytes += data.length;
      received.frames++;
      if (data[2] === 0x45 && data[3] === 0x56 /* ["EV */) received.events++;
    });
  }
}

async function joinAsNewcomer(url) {
  const home = mkdtempSync(join(tmpdir(), 'roost-bench-newcomer-'));
  const agent = createNodeAgent({ home, relays: [url], heartbeatSeconds: 0, inbox: false, WebSocket: CountingWebSocket, link: { authWaitMs: 0 } });
  try {
    await agent.start();
    await agent.whenConnected();
    received = { bytes: 0, frames: 0, events: 0 };
    const t0 = performance.now();
    const doc = await agent.doc(NAME, { owner: owner.pubkey });
    if (!(await doc.whenSynced(60_000))) throw new Error('newcomer did not sync');
    const ms = performance.now() - t0;
    if (JSON.stringify(doc.toJSON()) !== meta.expected || doc.hasPending()) throw new Error('newcomer state differs from the writers');
    return { ms, ...received };
  } finally {
    await agent.close();
    rmSync(home, { recursive: true, force: true });
  }
}

async function publishSnapshot(url, which, cursor, createdAt) {
  const snap = { update: decodeBase64(which.update), stateVector: new Map(which.sv) };
  const parts = makeSnapshotEvents(ADDRESS, snap, createdAt, undefined, new Map([[url, cursor]])).map((t) => owner.sign(t));
  await publishAll(url, parts);
  return parts;
}

async function servedDeltas(url) {
  const ws = await openSocket(url);
  const n = await new Promise((resolve) => {
    ws.on('message', (data) => {
      const f = JSON.parse(data.toString());
      if (f[0] === 'COUNT') resolve(f[2].count);
    });
    ws.send(JSON.stringify(['COUNT', 'c', { kinds: [4337], '#a': [ADDRESS] }]));
  });
  ws.close();
  return n;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const relay = await startRelay('roost', { dbFrom: cacheDir, env: { ROOST_CRDT_COMPACTION_GRACE_SECONDS: '0' } });
const rows = [];
let compaction;
try {
  const measure = async (way, served) => {
    await joinAsNewcomer(relay.url); // warm-up, not counted
    const runs = [];
    for (let i = 0; i < RUNS; i++) runs.push(await joinAsNewcomer(relay.url));
    const times = runs.map((r) => r.ms);
    rows.push({
      'newcomer loads': way,
      'deltas served': served,
      'events received': runs[0].events,
      'KiB received': (runs[0].bytes / 1024).toFixed(1),
      'ms to synced (median)': median(times).toFixed(0),
      'ms (min..max)': `${Math.min(...times).toFixed(0)}..${Math.max(...times).toFixed(0)}`,
    });
  };
  await measure(`every delta (${meta.deltas})`, await servedDeltas(relay.url));
  const t = performance.now();
  const snap = await publishSnapshot(relay.url, meta.snapshot, meta.cursorAtSnapshot, meta.createdAt + 1);
  const acked = performance.now() - t;
  // Compaction runs after the OK, a page per event-loop turn: wait until the covered deltas are gone.
  while ((await servedDeltas(relay.url)) > meta.deltas - meta.snapshotAfter && performance.now() - t < 30_000) await new Promise((r) => setTimeout(r, 5));
  compaction = { acked, done: performance.now() - t };
  await measure(`snapshot after ${meta.snapshotAfter} (${snap.length} parts) + ${meta.deltas - meta.snapshotAfter} deltas`, await servedDeltas(relay.url));
  const fin = await publishSnapshot(relay.url, meta.final, meta.cursorFinal, meta.createdAt + 2);
  await new Promise((r) => setTimeout(r, 200));
  await measure(`final snapshot only (${fin.length} parts)`, await servedDeltas(relay.url));
} finally {
  await relay.stop();
}

console.log(
  `node ${process.version}; deltas=${meta.deltas} (${(meta.deltaJsonBytes / 1024).toFixed(0)} KiB as event JSON), writers=${AGENTS}, runs=${RUNS} after a warm-up, seed=${SEED}; seed database ${seeded}`,
);
console.log(
  `snapshot after delta ${meta.snapshotAfter}: ${decodeBase64(meta.snapshot.update).length} B binary; final state ${decodeBase64(meta.final.update).length} B`,
);
console.table(rows);
console.log(
  `owner snapshot after delta ${meta.snapshotAfter}: parts acknowledged in ${compaction.acked.toFixed(0)} ms; its ${meta.snapshotAfter} covered deltas gone from queries ${compaction.done.toFixed(0)} ms after publishing (compaction, polled by COUNT)`,
);
console.log(`total ${((performance.now() - started) / 1000).toFixed(1)} s`);
