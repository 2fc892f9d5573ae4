#!/usr/bin/env node
/**
 * CRDT newcomer benchmark in memory (bench/crdt-relay.mjs runs the same flow through a real relay).
 *
 * Five agents produce N deltas (default 10 000) on one shared document: status updates, a task board,
 * a peer set and per-peer trust counters, each delta built on everything before it. A newcomer then joins
 * (a) by replaying every delta event, (b) by merging all deltas first and applying once, and (c) by loading
 * a snapshot plus the deltas after it. Reports wire bytes (event content and whole event JSON) and load time
 * (median of runs), and checks every newcomer ends in the same state.
 *
 *   npm run build && node bench/crdt.mjs [--deltas 10000] [--tail 1000] [--runs 5] [--seed 1]
 */
import { performance } from 'node:perf_hooks';
import * as Y from 'yjs';
import { assembleSnapshot, createSharedDoc, makeDocAddress, makeSnapshotEvents, makeUpdateEvent, parseUpdateEvent } from '../dist/client/crdt/index.js';
import { makeRandom as makeRng } from './lib/corpus.mjs';

const args = Object.fromEntries(process.argv.slice(2).flatMap((a, i, all) => (a.startsWith('--') ? [[a.slice(2), Number(all[i + 1])]] : [])));
const DELTAS = args.deltas ?? 10_000;
const TAIL = args.tail ?? 1_000;
const RUNS = args.runs ?? 9;
const SEED = args.seed ?? 1;

const rng = makeRng(SEED);
const pick = (n) => Math.floor(rng() * n);
const pk = (i) => (i + 1).toString(16).padStart(64, 'a');
const OWNER = pk(0);
const AGENTS = 5;
const ADDRESS = makeDocAddress(OWNER, 'mesh');
const HEX = (n) => '0'.repeat(n);

/** A fully sized Nostr event around a template, to count realistic bytes (id, pubkey, sig are fixed length). */
const asEvent = (t, pubkey) => ({ id: HEX(64), pubkey, created_at: t.created_at, kind: t.kind, tags: t.tags, content: t.content, sig: HEX(128) });

// --- produce the history -------------------------------------------------------------------------------
let clock = 1_700_000_000_000;
const members = Array.from({ length: AGENTS }, (_, i) => pk(i));
const agents = members.map((self, i) => createSharedDoc({ docId: ADDRESS, self, membership: { owner: OWNER, members }, clientId: 100 + i, now: () => clock }));
const events = [];
agents.forEach((doc) => {
  doc.connect({
    publish: (update, meta) => {
      const ev = asEvent(makeUpdateEvent(ADDRESS, update, meta.clock, Math.floor(clock / 1000)), meta.author);
      events.push(ev);
      for (const other of agents) if (other !== doc) other.receive(update, { author: meta.author });
    },
  });
});

const t0 = performance.now();
let snapshotAt;
while (events.length < DELTAS) {
  clock += 250;
  const doc = agents[pick(AGENTS)];
  const k = pick(100);
  const r = rng();
  if (r < 0.4) doc.status().set(['mood', 'energy', 'focus'][pick(3)], r < 0.2 ? Math.round(rng() * 100) / 100 : ['calm', 'busy', 'curious'][pick(3)]);
  else if (r < 0.65) doc.map('tasks').set(`task-${k}`, { state: ['todo', 'doing', 'done'][pick(3)], owner: doc.self.slice(-8), note: `step ${events.length}` });
  else if (r < 0.7) doc.map('tasks').delete(`task-${k}`);
  else if (r < 0.8) rng() < 0.6 ? doc.set('peers').add(pk(k)) : doc.set('peers').remove(pk(k));
  else doc.counters('trust').increment(pk(pick(AGENTS)), 1 + pick(3));
  if (events.length === DELTAS - TAIL && snapshotAt === undefined)
    snapshotAt = { snap: doc.snapshot(), index: events.length, createdAt: Math.floor(clock / 1000) };
}
const produceMs = performance.now() - t0;
const expected = JSON.stringify(agents[0].toJSON());
for (const a of agents) if (JSON.stringify(a.toJSON()) !== expected) throw new Error('writers diverged');

const bytes = (evs) => evs.reduce((n, e) => n + JSON.stringify(e).length, 0);
const contentBytes = (evs) => evs.reduce((n, e) => n + e.content.length, 0);
const tailEvents = events.slice(snapshotAt.index);
const snapEvents = makeSnapshotEvents(ADDRESS, snapshotAt.snap, snapshotAt.createdAt).map((t) => asEvent(t, OWNER));
const finalSnap = agents[0].snapshot();
const finalSnapEvents = makeSnapshotEvents(ADDRESS, finalSnap, Math.floor(clock / 1000)).map((t) => asEvent(t, OWNER));

const newcomer = () => createSharedDoc({ docId: ADDRESS, self: pk(50), membership: { owner: OWNER, members } });

// --- the three ways in -----------------------------------------------------------------------------------
const ways = {
  'replay every delta': () => {
    const d = newcomer();
    for (const ev of events) {
      const env = parseUpdateEvent(ev);
      d.receive(env.update, { author: env.author });
    }
    return d;
  },
  'merge deltas, apply once': () => {
    const d = newcomer();
    const envs = events.map(parseUpdateEvent);
    // one trust decision per author still applies: merge per author, then apply each merged update
    const byAuthor = new Map();
    for (const e of envs) (byAuthor.get(e.author) ?? byAuthor.set(e.author, []).get(e.author)).push(e.update);
    for (const [author, ups] of byAuthor) d.receive(Y.mergeUpdates(ups), { author });
    return d;
  },
  [`snapshot at ${DELTAS - TAIL} + ${TAIL} deltas`]: () => {
    const d = newcomer();
    const snap = assembleSnapshot(ADDRESS, snapEvents);
    d.receive(snap.update, { author: snap.author, kind: 'snapshot' });
    for (const ev of tailEvents) {
      const env = parseUpdateEvent(ev);
      d.receive(env.update, { author: env.author });
    }
    return d;
  },
  'final snapshot only': () => {
    const d = newcomer();
    const snap = assembleSnapshot(ADDRESS, finalSnapEvents);
    d.receive(snap.update, { author: snap.author, kind: 'snapshot' });
    return d;
  },
};
const wire = {
  'replay every delta': events,
  'merge deltas, apply once': events,
  [`snapshot at ${DELTAS - TAIL} + ${TAIL} deltas`]: [...snapEvents, ...tailEvents],
  'final snapshot only': finalSnapEvents,
};

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows = [];
for (const [name, run] of Object.entries(ways)) {
  const times = [];
  run().destroy(); // warm-up, not counted
  for (let i = 0; i < RUNS; i++) {
    const s = performance.now();
    const d = run();
    times.push(performance.now() - s);
    if (JSON.stringify(d.toJSON()) !== expected || d.hasPending()) throw new Error(`${name}: newcomer state differs`);
    d.destroy();
  }
  rows.push({
    way: name,
    events: wire[name].length,
    'content KiB': (contentBytes(wire[name]) / 1024).toFixed(1),
    'event JSON KiB': (bytes(wire[name]) / 1024).toFixed(1),
    'load ms (median)': median(times).toFixed(1),
    'load ms (min..max)': `${Math.min(...times).toFixed(1)}..${Math.max(...times).toFixed(1)}`,
  });
}

console.log(`node ${process.version}, yjs deltas=${DELTAS}, agents=${AGENTS}, runs=${RUNS}, seed=${SEED}`);
console.log(`produced ${events.length} deltas in ${produceMs.toFixed(0)} ms (5 writers, each delta applied by the 4 others)`);
console.log(
  `mean delta: ${(snapshotAt ? contentBytes(events) / events.length : 0).toFixed(0)} base64 chars; final state: ${finalSnap.update.length} bytes binary, ${finalSnapEvents.length} snapshot part(s), sv clients ${finalSnap.stateVector.size}`,
);
const snapTimes = Array.from({ length: RUNS }, () => {
  const s = performance.now();
  makeSnapshotEvents(ADDRESS, agents[0].snapshot(), 0);
  return performance.now() - s;
});
console.log(`making a snapshot (encode + base64 + parts): median ${median(snapTimes).toFixed(1)} ms`);
console.table(rows);
