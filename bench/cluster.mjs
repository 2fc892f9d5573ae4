// `npm run bench -- --store postgres`: the same ingest and fan-out workloads against SQLite, one
// Roost on PostgreSQL and three Roost instances on one PostgreSQL, in the same run (rounds alternate
// between them), plus the sequencer's ceiling: store instances writing straight to the database, no
// relay in front. See docs/performance.md ("Cluster").
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { startPostgresServer } from './lib/postgres.mjs';
import { readCpuMs, resolveSpec, ROOT, startRelay, targetLabel } from './lib/relay-process.mjs';
import { median, sleep } from './lib/stats.mjs';
import { openSubscribers, runFanoutRound } from './workloads/fanout.mjs';
import { runIngest } from './workloads/ingest.mjs';

const log = (msg) => process.stderr.write(`${msg}\n`);
const cpuOf = (pids) => pids.reduce((n, pid) => n + (readCpuMs(pid) ?? 0), 0);

/** Runs `fn` and adds the relays' and the database's CPU per unit (µs). */
async function measured(setup, pg, fn, units) {
  const relayPids = setup.relays.map((r) => r.pid);
  const dbPids = setup.pg ? pg.pids() : [];
  const r0 = cpuOf(relayPids);
  const d0 = cpuOf(dbPids);
  const run = await fn();
  const n = units(run);
  run.relayCpuUs = n ? ((cpuOf(relayPids) - r0) * 1000) / n : NaN;
  run.dbCpuUs = setup.pg && n ? ((cpuOf(dbPids) - d0) * 1000) / n : NaN;
  return run;
}

/** Ingest spread over the setup's instances: the publishers split between them. */
async function ingestRound(setup, events, size) {
  const n = setup.relays.length;
  const parts = setup.relays.map((_, i) => events.filter((_, k) => k % n === i));
  const conns = Math.max(1, Math.round(size.publishers / n));
  const runs = await Promise.all(
    setup.relays.map((r, i) => runIngest(r.url, parts[i], { connections: conns, window: size.window, durationMs: size.ingestDurationMs, timeoutMs: 60_000 })),
  );
  const accepted = runs.reduce((a, r) => a + r.accepted, 0);
  const seconds = Math.max(...runs.map((r) => r.seconds));
  return {
    accepted,
    rate: accepted / seconds,
    perInstance: accepted / seconds / n,
    p50: Math.max(...runs.map((r) => r.p50)),
    p99: Math.max(...runs.map((r) => r.p99)),
  };
}

/**
 * The sequencer's ceiling: `instances` PostgresStore objects (separate pools) keep 200 writes each
 * queued, 20 per transaction, for `ms`; events and transactions per second.
 */
async function sequencerCeiling(url, instances, ms, root = ROOT) {
  const { PostgresStore } = await import(pathToFileURL(join(root, 'dist/relay/store/postgres.js')).href);
  const stores = [];
  for (let i = 0; i < instances; i++) stores.push(await PostgresStore.open({ url, commitMaxBatch: 20, poolSize: 2 }));
  let stored = 0;
  let n = 0;
  const until = performance.now() + ms;
  const hex = (x) => x.toString(16).padStart(64, '0');
  const lane = async (s, who) => {
    while (performance.now() < until) {
      const batch = [];
      for (let k = 0; k < 20; k++) {
        const id = hex(++n + who * 1e9 + Date.now() * 1e3);
        batch.push(s.write({ id, pubkey: hex(who + 1), created_at: 1_700_000_000, kind: 1, tags: [['p', hex(7)]], content: 'x', sig: '0'.repeat(128) }));
      }
      for (const r of await Promise.all(batch)) if (r.status === 'stored') stored++;
    }
  };
  const t0 = performance.now();
  await Promise.all(stores.flatMap((s, i) => Array.from({ length: 10 }, (_, k) => lane(s, i * 10 + k))));
  const seconds = (performance.now() - t0) / 1000;
  for (const s of stores) await s.close();
  return { rate: stored / seconds, txPerSecond: stored / 20 / seconds };
}

/** Runs the comparison and prints its table. */
export async function runClusterBench({ size, data, rounds, baseline }) {
  const pg = await startPostgresServer();
  const setups = [];
  try {
    const one = await pg.createDatabase('roost_one');
    const three = await pg.createDatabase('roost_three');
    setups.push({ label: 'SQLite ×1', pg: false, relays: [await startRelay('roost')] });
    setups.push({ label: 'PostgreSQL ×1', pg: true, relays: [await startRelay('roost', { env: { ROOST_DB: one } })] });
    const threeRelays = [];
    for (let i = 0; i < 3; i++) threeRelays.push(await startRelay('roost', { env: { ROOST_DB: three } }));
    setups.push({ label: 'PostgreSQL ×3', pg: true, relays: threeRelays });
    if (baseline) {
      // Another build on the same PostgreSQL server, in the same alternating rounds: a before/after.
      const tag = targetLabel(baseline);
      setups.push({ label: `${tag} ×1`, pg: true, relays: [await startRelay(baseline, { env: { ROOST_DB: await pg.createDatabase('roost_base_one') } })] });
      const base3 = await pg.createDatabase('roost_base_three');
      const baseRelays = [];
      for (let i = 0; i < 3; i++) baseRelays.push(await startRelay(baseline, { env: { ROOST_DB: base3 } }));
      setups.push({ label: `${tag} ×3`, pg: true, relays: baseRelays });
    }
    for (const s of setups) s.ingest = [];
    for (const s of setups) s.fanout = [];

    const per = Math.floor(data.ingest.events.length / (rounds * setups.length));
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 ? [...setups.entries()].reverse() : [...setups.entries()];
      for (const [i, s] of order) {
        await sleep(500);
        const slice = data.ingest.events.slice((r * setups.length + i) * per, (r * setups.length + i + 1) * per);
        const run = await measured(
          s,
          pg,
          () => ingestRound(s, slice, size),
          (x) => x.accepted,
        );
        log(
          `  [${s.label}] ingest ${r + 1}/${rounds}: ${run.rate.toFixed(0)} events/s, p50 ${run.p50.toFixed(1)} ms, relay CPU ${run.relayCpuUs.toFixed(0)} µs/event, database CPU ${run.dbCpuUs.toFixed(0)} µs/event`,
        );
        s.ingest.push(run);
      }
    }

    // Fan-out: subscribers on the last instance, publishers on the first (with three instances the
    // events reach the subscribers' instance through the database and NOTIFY).
    for (const s of setups) {
      const subRelay = s.relays[s.relays.length - 1];
      log(`[${s.label}] fan-out: ${size.subscribers} subscribers on ${subRelay.url}`);
      s.subs = await openSubscribers(subRelay.url, data.fanout.targets, size.subscribers);
    }
    const fper = Math.floor(data.fanout.events.length / (rounds * setups.length));
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 ? [...setups.entries()].reverse() : [...setups.entries()];
      for (const [i, s] of order) {
        await sleep(500);
        const slice = data.fanout.events.slice((r * setups.length + i) * fper, (r * setups.length + i + 1) * fper);
        const run = await measured(
          s,
          pg,
          () =>
            runFanoutRound(s.relays[0].url, s.subs, slice, { publishers: size.fanoutPublishers, window: size.fanoutWindow, durationMs: size.fanoutDurationMs }),
          (x) => x.deliveries,
        );
        log(`  [${s.label}] fan-out ${r + 1}/${rounds}: ${run.rate.toFixed(0)} deliveries/s, p50 ${run.p50.toFixed(1)} ms, ${run.deliveries}/${run.expected}`);
        s.fanout.push(run);
      }
    }
    for (const s of setups) await s.subs.close();
    for (const s of setups) for (const r of s.relays) await r.stop();

    log('sequencer ceiling: store instances writing 20 events per transaction, no relay');
    // With a baseline: this build and the baseline alternate, twice each (the median is of two).
    const ceilings = { this: { 1: [], 3: [] }, base: { 1: [], 3: [] } };
    const builds = baseline
      ? [
          ['this', ROOT],
          ['base', resolveSpec(baseline).root],
        ]
      : [['this', ROOT]];
    let db = 0;
    for (let r = 0; r < (baseline ? 2 : 1); r++) {
      for (const [name, root] of r % 2 ? [...builds].reverse() : builds) {
        for (const n of [1, 3]) ceilings[name][n].push(await sequencerCeiling(await pg.createDatabase(`roost_seq${++db}`), n, 3000, root));
      }
    }
    const ceil = (name, n, k) => median(ceilings[name][n].map((x) => x[k]));

    const m = (s, w, k) => median(s[w].map((x) => x[k]));
    const fmt = (v, d = 0) => (Number.isFinite(v) ? (Math.abs(v) >= 10_000 ? `${(v / 1000).toFixed(1)}k` : v.toFixed(d)) : 'n/a');
    const rows = [
      ['ingest events/s (all instances) ↑', (s) => fmt(m(s, 'ingest', 'rate'))],
      ['ingest events/s per instance ↑', (s) => fmt(m(s, 'ingest', 'perInstance'))],
      ['ingest OK p50 ms ↓', (s) => fmt(m(s, 'ingest', 'p50'), 1)],
      ['ingest OK p99 ms ↓', (s) => fmt(m(s, 'ingest', 'p99'), 1)],
      ['ingest relay CPU µs/event (all instances) ↓', (s) => fmt(m(s, 'ingest', 'relayCpuUs'))],
      ['ingest database CPU µs/event ↓', (s) => fmt(m(s, 'ingest', 'dbCpuUs'))],
      ['fan-out deliveries/s (one instance) ↑', (s) => fmt(m(s, 'fanout', 'rate'))],
      ['fan-out delivery p50 ms ↓', (s) => fmt(m(s, 'fanout', 'p50'), 1)],
      ['fan-out delivery p99 ms ↓', (s) => fmt(m(s, 'fanout', 'p99'), 1)],
      ['fan-out relay CPU µs/delivery (all instances) ↓', (s) => fmt(m(s, 'fanout', 'relayCpuUs'), 2)],
    ];
    const head = ['figure', ...setups.map((s) => s.label)];
    const table = [head, ...rows.map(([name, f]) => [name, ...setups.map(f)])];
    const baseCeil = (k) => (baseline ? [fmt(ceil('base', 1, k)), fmt(ceil('base', 3, k))] : []);
    table.push(['sequencer ceiling events/s (20/tx, no relay) ↑', '—', fmt(ceil('this', 1, 'rate')), fmt(ceil('this', 3, 'rate')), ...baseCeil('rate')]);
    table.push([
      'sequencer ceiling transactions/s ↑',
      '—',
      fmt(ceil('this', 1, 'txPerSecond')),
      fmt(ceil('this', 3, 'txPerSecond')),
      ...baseCeil('txPerSecond'),
    ]);
    const widths = head.map((_, c) => Math.max(...table.map((row) => row[c].length)));
    console.log('\nRoost cluster bench — SQLite and PostgreSQL 1 and 3 instances, same run, medians of alternating rounds\n');
    for (const [k, row] of table.entries()) {
      console.log(row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  '));
      if (k === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
    }
    console.log(
      '\nAll processes share this machine: three instances split the same cores, so their sum shows the cost of the cluster, not its scaling (docs/performance.md).',
    );
  } finally {
    for (const s of setups) for (const r of s.relays) await r.stop().catch(() => undefined);
    pg.stop();
  }
}
