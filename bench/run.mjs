#!/usr/bin/env node
// `npm run bench` — neutral NIP-01 load generator and comparison harness. Runs the same workloads
// against the relay under test (Roost by default) and a peer (@nostr-relay/core by default, or any
// ws:// URL), and prints one table: figure, subject, peer, ratio. See docs/performance.md.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import os from 'node:os';
import { startCpuMeter, startRunMeter } from './lib/machine.mjs';
import { loadFanoutCorpus, loadIngestCorpus, loadStoreCorpus } from './lib/corpus.mjs';
import { checkTarget, readCpuMs, ROOT, startRelay, targetLabel, UsageError } from './lib/relay-process.mjs';
import { startSeeded } from './lib/seed.mjs';
import { median, sleep } from './lib/stats.mjs';
import { probeSeqExtension, runBackfillPaged, runBackfillSeq } from './workloads/backfill.mjs';
import { openSubscribers, runFanoutRound } from './workloads/fanout.mjs';
import { runAttack } from './workloads/attack.mjs';
import { runIdle } from './workloads/idle.mjs';
import { runFederation } from './workloads/federation.mjs';
import { identityLines, runIdentity } from './workloads/identity.mjs';
import { runIngest } from './workloads/ingest.mjs';
import { buildFilters, QUERY_SHAPES, runQuery } from './workloads/query.mjs';
import { runWakeQueue } from './workloads/wake-queue.mjs';
import { benchStorm, loadStormCorpus, stormRows } from './workloads/storm.mjs';
import { runClusterBench } from './cluster.mjs';

/** Workload sizes: the full run (under 5 minutes on 2 cores once caches exist) and the CI smoke run. */
const SIZES = {
  full: {
    publishers: 8,
    window: 64,
    ingestEvents: 200_000,
    ingestRounds: 3,
    ingestDurationMs: 3000,
    mailbox: 100_000,
    authors: 500,
    perAuthor: 20,
    targets: 500,
    addrPerAuthor: 4,
    queryConnections: 8,
    queryRuns: 3,
    queryDurationMs: 2500,
    queryPoolPerRun: 40_000,
    backfillRuns: 3,
    backfillBudgetMs: 20_000,
    backfillTimeoutMs: 25_000,
    pageSize: 500,
    subscribers: 500,
    fanoutPublishers: 2,
    fanoutWindow: 8,
    fanoutEvents: 1500,
    fanoutRounds: 3,
    fanoutDurationMs: 3000,
    idleConnections: 2000,
    wakeAgents: 2000,
    wakeRounds: 3,
    stormAgents: 5000,
    stormPerAgent: 20,
    stormSockets: 500,
    stormRuns: 3,
    federationEvents: 100_000,
    identityRuns: 5,
    identityEvents: 64,
    identityCards: 10_000,
  },
  smoke: {
    publishers: 8,
    window: 8,
    ingestEvents: 800,
    ingestRounds: 2,
    ingestDurationMs: 1000,
    mailbox: 2000,
    authors: 20,
    perAuthor: 5,
    targets: 20,
    addrPerAuthor: 2,
    queryConnections: 4,
    queryRuns: 1,
    queryDurationMs: 500,
    queryPoolPerRun: 2000,
    backfillRuns: 1,
    backfillBudgetMs: 10_000,
    backfillTimeoutMs: 10_000,
    pageSize: 200,
    subscribers: 40,
    fanoutPublishers: 2,
    fanoutWindow: 4,
    fanoutEvents: 100,
    fanoutRounds: 1,
    fanoutDurationMs: 1000,
    idleConnections: 100,
    wakeAgents: 100,
    wakeRounds: 1,
    stormAgents: 200,
    stormPerAgent: 5,
    stormSockets: 50,
    stormRuns: 1,
    federationEvents: 2000,
    identityRuns: 1,
    identityEvents: 8,
    identityCards: 200,
  },
};

/**
 * strfry 1.1.1 as measured elsewhere (issue 15: another quiet 2-core machine, same workload shapes).
 * Printed for context only: never divided by a figure of this run.
 */
const REFERENCE = {
  relay: 'strfry 1.1.1 (measured elsewhere, issue 15)',
  'ingest relay CPU µs/event': 213,
  'query relay CPU µs/query': 245,
  'fan-out relay CPU µs/delivery': 4.6,
  'idle KiB/connection': 1.7,
  'storm relay CPU µs/agent': 300,
};

const WORKLOADS = ['ingest', 'query', 'backfill', 'fanout', 'idle', 'wake', 'attack', 'storm', 'federation', 'identity'];

const HELP = `usage: node bench/run.mjs [options]
  --smoke             tiny versions of every workload (CI): figures printed, nothing asserted
  --subject SPEC      relay under test: roost (default; dist/relay/main.js), roost:<checkout dir>,
                      nostr-relay, or ws://host:port; roost-traced / roost-traced-all: Roost exporting
                      spans over OTLP (the default sampler / every event traced)
  --peer SPEC         comparison relay: nostr-relay (default), or any SPEC as above
                      (a URL is used as is: its memory cannot be measured, and it keeps what it stores)
  --also SPEC         a third relay in the ingest rounds (only with --only ingest), e.g. --subject
                      roost-traced-all --peer roost --also roost-traced: its median is printed after the table
  --only LIST         comma-separated subset of: ${WORKLOADS.join(',')}
  --store postgres    instead: ingest and fan-out on SQLite, one Roost on PostgreSQL and three Roost
                      instances on one PostgreSQL (same run), and the sequencer's ceiling; with
                      --peer roost:<checkout dir>, that build's PostgreSQL ×1 and ×3 too (before/after)
  --ingest-rounds N   ingest rounds per relay (default 3); more rounds steady the median of a small
                      difference, e.g. tracing's cost
  --ingest-rate N     offer the ingest rounds N events/s in all instead of as fast as each relay answers,
                      so the relays commit like-sized groups and CPU per event compares their own work
  --json FILE         also write every figure, run and note as JSON
  --no-snapshot       pre-load databases through the socket every run instead of reusing snapshots
  --help`;

function parseArgs(argv) {
  const o = { smoke: false, subject: 'roost', peer: 'nostr-relay', also: null, only: WORKLOADS, json: null, snapshots: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${a} needs a value`);
      return v;
    };
    if (a === '--smoke') o.smoke = true;
    else if (a === '--store') {
      o.store = value();
      if (o.store !== 'postgres' && o.store !== 'sqlite') throw new UsageError(`unknown store ${o.store}: use postgres`);
    } else if (a === '--subject') o.subject = value();
    else if (a === '--peer') {
      o.peer = value();
      o.peerGiven = true;
    } else if (a === '--also') o.also = value();
    else if (a === '--json') o.json = value();
    else if (a === '--ingest-rate') {
      o.ingestRate = Number(value());
      if (!(o.ingestRate > 0)) throw new UsageError('--ingest-rate needs a number of events per second > 0');
    } else if (a === '--ingest-rounds') {
      o.ingestRounds = Number(value());
      if (!Number.isInteger(o.ingestRounds) || o.ingestRounds < 1) throw new UsageError('--ingest-rounds needs a whole number ≥ 1');
    } else if (a === '--no-snapshot') o.snapshots = false;
    else if (a === '--only') {
      o.only = value().split(',');
      for (const w of o.only) if (!WORKLOADS.includes(w)) throw new UsageError(`unknown workload ${w}`);
    } else if (a === '--help' || a === '-h') {
      console.log(HELP);
      process.exit(0);
    } else throw new UsageError(`unknown argument ${a}\n${HELP}`);
  }
  return o;
}

const log = (msg) => process.stderr.write(`${msg}\n`);

/**
 * Runs `fn` and adds `cpuUs`: the relay process's CPU time (every thread) during the run, in µs per
 * `units(result)` (NaN for a relay given by URL), and `load`: the share of the machine other processes
 * used meanwhile. CPU per unit is less sensitive to other load than wall-clock rates.
 */
async function withCpu(relay, fn, units) {
  const meter = startRunMeter(livePids);
  const before = relay.pid === null ? null : readCpuMs(relay.pid);
  const run = await fn();
  const after = relay.pid === null ? null : readCpuMs(relay.pid);
  const n = units(run);
  run.cpuUs = before === null || after === null || !n ? NaN : ((after - before) * 1000) / n;
  run.load = meter.stop();
  return run;
}

/** Pids of the relays running now (their CPU is not background load). */
let livePids = [];
/** Background load of every run, by workload. */
const loads = new Map();
const noteLoad = (workload, run) => {
  if (!loads.has(workload)) loads.set(workload, []);
  loads.get(workload).push(run.load);
};
const fmtLoad = (run) => (Number.isFinite(run.load) ? `, load ${(run.load * 100).toFixed(0)}%` : '');

function summarise(runs, keys) {
  const out = { runs };
  for (const k of keys) out[k] = median(runs.map((r) => r[k]));
  return out;
}

// Both relays are up at once and their runs alternate in ABBA order (subject, peer, peer, subject, …),
// so load that comes and goes on the machine falls on both alike and neither always goes first; a
// relay waiting for its turn is idle.

/** The relays' [index, relay] pairs in the order of round `r` (reversed on odd rounds). */
function turns(relays, r) {
  const order = [...relays.entries()];
  return r % 2 ? order.reverse() : order;
}

async function benchStore(targets, data, size, opts, notes) {
  const want = (w) => opts.only.includes(w);
  if (!want('ingest') && !want('query') && !want('backfill')) return;
  const relays = [];
  try {
    for (const t of targets) {
      log(`[${t.label}] pre-loaded relay`);
      relays.push(await startSeeded(t.spec, data.store, { log, snapshots: opts.snapshots }));
    }
    livePids = relays.map((r) => r.pid).filter((pid) => pid !== null);
    if (want('ingest')) {
      const runs = relays.map(() => []);
      if (opts.ingestRate) notes.push(`ingest offered at ${opts.ingestRate} events/s (--ingest-rate): a relay that kept up ran at that rate`);
      const per = Math.floor(data.ingest.events.length / (size.ingestRounds * relays.length));
      for (let r = 0; r < size.ingestRounds; r++) {
        for (const [i, relay] of turns(relays, r)) {
          await sleep(500); // let the other relay's after-work (GC, checkpoints) settle
          const first = (r * relays.length + i) * per;
          const slice = data.ingest.events.slice(first, first + per);
          const run = await withCpu(
            relay,
            () =>
              runIngest(relay.url, slice, {
                connections: size.publishers,
                window: size.window,
                durationMs: size.ingestDurationMs,
                timeoutMs: 60_000,
                rate: opts.ingestRate ?? 0,
              }),
            (x) => x.accepted,
          );
          log(
            `  [${relay.label}] ingest ${r + 1}/${size.ingestRounds}: ${run.rate.toFixed(0)} events/s, OK p50 ${run.p50.toFixed(1)} ms, p99 ${run.p99.toFixed(1)} ms (${run.accepted}/${run.sent} accepted), relay CPU ${run.cpuUs.toFixed(0)} µs/event${fmtLoad(run)}`,
          );
          noteLoad('ingest', run);
          if (run.rejected) notes.push(`${relay.label} ingest round ${r + 1}: ${run.rejected} rejected ${JSON.stringify(run.reasons)}`);
          if (run.timedOut) notes.push(`${relay.label} ingest round ${r + 1} timed out (${run.answered}/${run.sent} answered)`);
          if (run.sent === slice.length && !opts.smoke)
            notes.push(`${relay.label} ingest round ${r + 1} used its whole slice before ${size.ingestDurationMs} ms: raise ingestEvents`);
          runs[i].push(run);
        }
      }
      relays.forEach((_, i) => (targets[i].result.ingest = summarise(runs[i], ['rate', 'p50', 'p99', 'cpuUs'])));
    }
    if (want('query')) {
      for (const t of targets) t.result.query = {};
      for (const [name, shape] of Object.entries(QUERY_SHAPES)) {
        const runs = relays.map(() => []);
        const expected = shape.expected(data.store);
        for (let r = 0; r < size.queryRuns; r++) {
          const filters = buildFilters(shape, data.store, size.queryPoolPerRun, 100 + r);
          for (const [i, relay] of turns(relays, r)) {
            await sleep(1100); // longer than any result-cache lifetime we know of (the peer's is 1 s)
            const run = await withCpu(
              relay,
              () => runQuery(relay.url, filters, { connections: size.queryConnections, durationMs: size.queryDurationMs }),
              (x) => x.queries,
            );
            log(
              `  [${relay.label}] query ${shape.title} ${r + 1}/${size.queryRuns}: ${run.rate.toFixed(0)} q/s, p50 ${run.p50.toFixed(2)} ms, p99 ${run.p99.toFixed(2)} ms, ${run.eventsPerQuery.toFixed(1)} events/query, relay CPU ${run.cpuUs.toFixed(0)} µs/query${fmtLoad(run)}`,
            );
            noteLoad('query', run);
            if (Math.abs(run.eventsPerQuery - expected) > 1e-9)
              notes.push(`${relay.label} query ${shape.title}: ${run.eventsPerQuery.toFixed(2)} events per answer, expected ${expected}`);
            if (run.closed) notes.push(`${relay.label} query ${shape.title}: ${run.closed} REQs answered CLOSED`);
            runs[i].push(run);
          }
        }
        relays.forEach((_, i) => (targets[i].result.query[name] = summarise(runs[i], ['rate', 'p50', 'p99', 'eventsPerQuery', 'cpuUs'])));
      }
    }
    if (want('backfill')) await benchBackfill(targets, relays, data, size, notes);
  } finally {
    for (const relay of relays) await relay.stop();
  }
}

async function benchBackfill(targets, relays, data, size, notes) {
  const agent = data.store.agent;
  const expected = size.mailbox;
  const modes = [];
  for (const [i, relay] of relays.entries()) {
    const seq = await probeSeqExtension(relay.url, agent);
    targets[i].result.backfill = { seqExtension: seq };
    if (seq) modes.push({ i, relay, mode: 'seq', runs: [], spent: 0, last: 0 });
  }
  relays.forEach((relay, i) => modes.push({ i, relay, mode: 'paged', runs: [], spent: 0, last: 0 }));
  for (let r = 0; r < size.backfillRuns; r++) {
    for (const m of r % 2 ? [...modes].reverse() : modes) {
      // A slow relay gets fewer repeats (never none): skip when another run would overrun the budget.
      if (r > 0 && m.spent + m.last > size.backfillBudgetMs) continue;
      await sleep(1100);
      const t0 = performance.now();
      const run =
        m.mode === 'seq'
          ? await runBackfillSeq(m.relay.url, agent, { timeoutMs: size.backfillTimeoutMs })
          : await runBackfillPaged(m.relay.url, agent, { pageSize: size.pageSize, timeoutMs: size.backfillTimeoutMs });
      m.last = performance.now() - t0;
      m.spent += m.last;
      log(
        `  [${m.relay.label}] backfill ${m.mode} ${r + 1}/${size.backfillRuns}: ${run.events} events in ${run.pages} page(s), ${run.rate.toFixed(0)} events/s`,
      );
      if (run.timedOut)
        notes.push(
          `${m.relay.label} backfill (${m.mode}) stopped after ${size.backfillTimeoutMs / 1000} s with ${run.events}/${expected} events read: its rate is over that part`,
        );
      else if (run.events !== expected || !run.complete)
        notes.push(
          `${m.relay.label} backfill (${m.mode}): ${run.events}/${expected} events${run.complete ? '' : ', incomplete'}${run.error ? `: ${run.error}` : ''}`,
        );
      m.runs.push(run);
    }
  }
  for (const m of modes) targets[m.i].result.backfill[m.mode] = { partial: m.runs.some((x) => x.timedOut), ...summarise(m.runs, ['rate']) };
}

async function benchFanout(targets, data, size, notes) {
  const relays = [];
  const subs = [];
  try {
    for (const t of targets) {
      const relay = await startRelay(t.spec);
      relays.push(relay);
      log(`[${relay.label}] fan-out: ${size.subscribers} subscribers`);
      subs.push(await openSubscribers(relay.url, data.fanout.targets, size.subscribers));
    }
    livePids = relays.map((r) => r.pid).filter((pid) => pid !== null);
    const runs = relays.map(() => []);
    const per = Math.floor(data.fanout.events.length / (size.fanoutRounds * relays.length));
    for (let r = 0; r < size.fanoutRounds; r++) {
      for (const [i, relay] of turns(relays, r)) {
        await sleep(500);
        const first = (r * relays.length + i) * per;
        const slice = data.fanout.events.slice(first, first + per);
        const run = await withCpu(
          relay,
          () => runFanoutRound(relay.url, subs[i], slice, { publishers: size.fanoutPublishers, window: size.fanoutWindow, durationMs: size.fanoutDurationMs }),
          (x) => x.deliveries,
        );
        log(
          `  [${relay.label}] fan-out ${r + 1}/${size.fanoutRounds}: ${run.rate.toFixed(0)} deliveries/s, p50 ${run.p50.toFixed(1)} ms, p99 ${run.p99.toFixed(1)} ms (${run.published} events, ${run.deliveries}/${run.expected} deliveries), relay CPU ${run.cpuUs.toFixed(1)} µs/delivery${fmtLoad(run)}`,
        );
        noteLoad('fan-out', run);
        if (run.missing || run.deliveries !== run.expected)
          notes.push(`${relay.label} fan-out round ${r + 1}: ${run.deliveries}/${run.expected} deliveries (${run.missing} given up after 5 s)`);
        if (run.rejected) notes.push(`${relay.label} fan-out round ${r + 1}: ${run.rejected} events rejected`);
        if (run.unmatched)
          notes.push(`${relay.label} fan-out round ${r + 1}: ${run.unmatched} deliveries to #p subscriptions the event does not match (not counted)`);
        runs[i].push(run);
      }
    }
    relays.forEach((_, i) => (targets[i].result.fanout = { subscribers: size.subscribers, ...summarise(runs[i], ['rate', 'p50', 'p99', 'cpuUs']) }));
  } finally {
    for (const s of subs) await s.close();
    for (const relay of relays) await relay.stop();
  }
}

async function benchIdle(target, size) {
  // Without Roost's start-up warm-up: its heap growth would be in the baseline RSS and shrink the per-connection figure.
  const relay = await startRelay(target.spec, { env: { ROOST_WARMUP_MS: '0' } });
  try {
    if (relay.pid === null) return { perConnectionKiB: NaN, note: 'external relay: memory n/a' };
    log(`[${relay.label}] idle: ${size.idleConnections} connections`);
    const r = await runIdle(relay.url, relay.pid, { count: size.idleConnections });
    log(`  RSS ${r.rssBeforeKiB} → ${r.rssAfterKiB} KiB: ${r.perConnectionKiB.toFixed(1)} KiB per connection (${r.subscribed} subscribed)`);
    return r;
  } finally {
    await relay.stop();
  }
}

/**
 * The same idle measurement on a bare `ws` server in a fresh process (bench/lib/bare-ws-server.mjs):
 * Node's own floor per connection, measured in this run beside the relays (medians of `runs`).
 */
async function benchBareWsIdle(size, runs = 3) {
  const perConnection = [];
  for (let i = 0; i < runs; i++) {
    const child = spawn(process.execPath, [join(ROOT, 'bench/lib/bare-ws-server.mjs')], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const port = await new Promise((resolve, reject) => {
        child.once('exit', () => reject(new Error('bare ws server exited')));
        child.stdout.on('data', (d) => {
          const m = /port (\d+)/.exec(String(d));
          if (m) resolve(m[1]);
        });
      });
      perConnection.push((await runIdle(`ws://127.0.0.1:${port}`, child.pid, { count: size.idleConnections })).perConnectionKiB);
    } finally {
      child.kill();
    }
  }
  log(`[bare ws] idle: ${perConnection.map((v) => v.toFixed(1)).join(', ')} KiB per connection (fresh process each)`);
  return median(perConnection);
}

// ---- report ----

const fmtRate = (v) => (!Number.isFinite(v) ? 'n/a' : v >= 10_000 ? `${(v / 1000).toFixed(0)}k` : v >= 1000 ? `${(v / 1000).toFixed(1)}k` : v.toFixed(0));
const fmtMs = (v) => (!Number.isFinite(v) ? 'n/a' : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
const fmtKiB = (v) => (!Number.isFinite(v) ? 'n/a' : v.toFixed(1));

function rows(a, b) {
  const out = [];
  const add = (figure, better, fmt, get, labels) => {
    const va = get(a);
    const vb = get(b);
    out.push({
      figure,
      better,
      subject: va,
      peer: vb,
      ratio: Number.isFinite(va) && Number.isFinite(vb) && vb !== 0 ? va / vb : NaN,
      fmt,
      labels: labels ? [labels(a), labels(b)] : null,
    });
  };
  if (a.ingest || b.ingest) {
    add('ingest events/s', 'higher', fmtRate, (r) => r.ingest?.rate);
    add('ingest OK p50 ms', 'lower', fmtMs, (r) => r.ingest?.p50);
    add('ingest OK p99 ms', 'lower', fmtMs, (r) => r.ingest?.p99);
    add('ingest relay CPU µs/event', 'lower', fmtRate, (r) => r.ingest?.cpuUs);
  }
  for (const [name, shape] of Object.entries(QUERY_SHAPES)) {
    if (!a.query?.[name] && !b.query?.[name]) continue;
    add(`query ${shape.title} q/s`, 'higher', fmtRate, (r) => r.query?.[name]?.rate);
    add(`query ${shape.title} p50 ms`, 'lower', fmtMs, (r) => r.query?.[name]?.p50);
    add(`query ${shape.title} p99 ms`, 'lower', fmtMs, (r) => r.query?.[name]?.p99);
    add(`query ${shape.title} relay CPU µs/query`, 'lower', fmtRate, (r) => r.query?.[name]?.cpuUs);
  }
  if (a.backfill || b.backfill) {
    const best = (r) => (r.backfill?.seq ? r.backfill.seq.rate : r.backfill?.paged?.rate);
    const partial = (b) => (b?.partial ? ', partial' : '');
    add('backfill events/s (seq ext., else paged)', 'higher', fmtRate, best, (r) =>
      r.backfill?.seq ? `seq${partial(r.backfill.seq)}` : `paged${partial(r.backfill?.paged)}`,
    );
    add(
      'backfill events/s (#p + until paging)',
      'higher',
      fmtRate,
      (r) => r.backfill?.paged?.rate,
      (r) => `paged${partial(r.backfill?.paged)}`,
    );
  }
  if (a.fanout || b.fanout) {
    add('fan-out deliveries/s', 'higher', fmtRate, (r) => r.fanout?.rate);
    add('fan-out delivery p50 ms', 'lower', fmtMs, (r) => r.fanout?.p50);
    add('fan-out delivery p99 ms', 'lower', fmtMs, (r) => r.fanout?.p99);
    add('fan-out relay CPU µs/delivery', 'lower', fmtMs, (r) => r.fanout?.cpuUs);
  }
  if (a.idle || b.idle) add('idle KiB/connection', 'lower', fmtKiB, (r) => r.idle?.perConnectionKiB);
  if (a.attack || b.attack) {
    add('honest REQ→EOSE p99 ms, quiet', 'lower', fmtMs, (r) => r.attack?.quiet.p99);
    add('honest REQ→EOSE p99 ms, under attack', 'lower', fmtMs, (r) => r.attack?.attacked.p99);
  }
  stormRows(a, b, add, { fmtRate, fmtMs });
  const wakeKeys = new Set([...Object.keys(a.wake?.figures ?? {}), ...Object.keys(b.wake?.figures ?? {})]);
  for (const k of wakeKeys) {
    const lower = k.includes(' ms') || k.includes('µs');
    add(k, lower ? 'lower' : 'higher', k.includes(' ms') ? fmtMs : fmtRate, (r) => r.wake?.figures?.[k]);
  }
  return out;
}

function printTable(table, names, footer = 'medians of repeated runs') {
  const head = ['figure', names[0], names[1], `ratio`];
  const body = table.map((r) => [
    `${r.figure} ${r.better === 'higher' ? '↑' : '↓'}`,
    r.fmt(r.subject) + (r.labels && Number.isFinite(r.subject) ? ` (${r.labels[0]})` : ''),
    r.fmt(r.peer) + (r.labels && Number.isFinite(r.peer) ? ` (${r.labels[1]})` : ''),
    Number.isFinite(r.ratio) ? `${r.ratio.toFixed(2)}×` : '—',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  console.log(line(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const b of body) console.log(line(b));
  console.log(`ratio = ${names[0]} / ${names[1]}; ↑ higher is better, ↓ lower is better; ${footer}.`);
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const size = { ...SIZES[opts.smoke ? 'smoke' : 'full'] };
  if (opts.ingestRounds) size.ingestRounds = opts.ingestRounds;
  if (opts.store === 'postgres') {
    checkTarget('roost');
    const data = { ingest: loadIngestCorpus(size, log), fanout: loadFanoutCorpus(size, log) };
    await runClusterBench({ size, data, rounds: opts.smoke ? 1 : 3, baseline: opts.peerGiven ? opts.peer : undefined });
    return;
  }
  checkTarget(opts.subject);
  checkTarget(opts.peer);
  if (opts.also !== null) {
    if (opts.only.join() !== 'ingest') throw new UsageError('--also works with --only ingest');
    checkTarget(opts.also);
  }
  const t0 = performance.now();
  const data = {};
  if (['ingest', 'query', 'backfill'].some((w) => opts.only.includes(w))) {
    data.store = loadStoreCorpus(size, log);
    data.ingest = loadIngestCorpus(size, log);
  }
  if (opts.only.includes('fanout')) data.fanout = loadFanoutCorpus(size, log);
  if (opts.only.includes('storm')) data.storm = loadStormCorpus(size, log);
  const notes = [];
  const specs = [opts.subject, opts.peer];
  const targets = [...specs, ...(opts.also === null ? [] : [opts.also])].map((spec) => ({
    spec,
    label: targetLabel(spec),
    result: { spec, label: targetLabel(spec) },
  }));
  const meter = startCpuMeter();
  const self0 = process.cpuUsage();
  const tRun = performance.now();
  await benchStore(targets, data, size, opts, notes);
  if (opts.only.includes('fanout')) await benchFanout(targets, data, size, notes);
  if (opts.only.includes('storm')) await benchStorm(targets, data, size, opts, notes, { log, withCpu, noteLoad, fmtLoad, setLivePids: (p) => (livePids = p) });
  for (const t of targets) {
    if (opts.only.includes('idle')) t.result.idle = await benchIdle(t, size);
    if (opts.only.includes('wake')) {
      t.result.wake = await runWakeQueue({ size, spec: t.spec, startRelay, log });
      for (const n of t.result.wake?.notes ?? []) notes.push(`${t.label}: ${n}`);
    }
    if (opts.only.includes('attack')) t.result.attack = await runAttack({ size, spec: t.spec, startRelay, log });
  }
  const bareIdle = opts.only.includes('idle') ? await benchBareWsIdle(size) : undefined;
  // Roost only (the peer has no replication): figures printed after the table.
  const federation = opts.only.includes('federation') ? await runFederation({ size, startRelay, log }) : undefined;
  if (federation) targets[0].result.federation = federation;
  // Client-side computation (no relay): key event logs, DMs from rotated senders, discovery with minReputation.
  let identity;
  if (opts.only.includes('identity')) {
    log('identity: key event logs, rotated senders, discovery with minReputation');
    identity = await runIdentity({ runs: size.identityRuns, events: size.identityEvents, cards: size.identityCards });
    targets[0].result.identity = identity;
  }
  const wall = (performance.now() - tRun) / 1000;
  const self = process.cpuUsage(self0);
  const cpu = { ...meter.stop(), harnessCores: (self.user + self.system) / 1e6 / wall };
  const external = specs.some((s) => /^wss?:/.test(s));
  log(
    `load generator used ${cpu.harnessCores.toFixed(2)} of a core on average${cpu.foreignShare === undefined ? '' : `; other processes${external ? ' (the external relay included)' : ''} ${(cpu.foreignShare * 100).toFixed(0)}% of the machine`}`,
  );
  if (cpu.foreignShare > 0.1 && !external)
    notes.push(
      `other processes used ${(cpu.foreignShare * 100).toFixed(0)}% of the CPU during the run (runs alternate between the relays, so both saw it, but the figures are noisier): re-run on a quiet machine for publishable numbers`,
    );
  const results = { subject: targets[0].result, peer: targets[1].result };
  const names = specs[0] === specs[1] ? [`${targetLabel(specs[0])} #1`, `${targetLabel(specs[1])} #2`] : specs.map(targetLabel);
  const table = rows(results.subject, results.peer);
  console.log(`\nRoost bench (${opts.smoke ? 'smoke' : 'full'}) — ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, node ${process.version}\n`);
  printTable(table, names);
  for (const t of targets.slice(2)) {
    const cpu = t.result.ingest?.cpuUs;
    if (cpu !== undefined)
      console.log(
        `also in these rounds: ${t.label} ingest relay CPU ${cpu.toFixed(0)} µs/event (median), ${(cpu / results.peer.ingest.cpuUs).toFixed(2)}× ${names[1]}`,
      );
  }
  if (bareIdle !== undefined)
    console.log(
      `also in this run: a bare \`ws\` server (REQ answered with EOSE, nothing else) holds ${fmtKiB(bareIdle)} KiB per idle connection (median): Node's floor`,
    );
  if (loads.size > 0) {
    const parts = [...loads].map(([w, l]) => {
      const v = l.filter(Number.isFinite);
      return v.length ? `${w} ${(median(v) * 100).toFixed(0)}% (max ${(Math.max(...v) * 100).toFixed(0)}%)` : `${w} n/a`;
    });
    console.log(`background load (other processes, share of all cores) during the runs, median: ${parts.join(', ')}`);
  }
  if (!opts.smoke) {
    const ref = Object.entries(REFERENCE).filter(([k]) => k !== 'relay');
    console.log(`\nfor context, ${REFERENCE.relay}: ${ref.map(([k, v]) => `${k} ${v}`).join(', ')} (no ratio: other machine, other run)`);
  }
  if (opts.only.includes('wake') && (results.subject.wake === null || results.peer.wake === null))
    console.log('wake-queue: measured for Roost only (the peer has no wake queue)');
  if (results.subject.attack) console.log('attack: Roost only, quiet and attacked phases alternating on the same relay in this run');
  if (federation) {
    console.log('\nfederation (Roost only, one run each):');
    for (const c of federation.catchUp)
      console.log(
        `  replication catch-up by ${c.mode}: ${c.rate.toFixed(0)} events/s (${c.events} events in ${c.seconds.toFixed(2)} s)${c.ok ? '' : ' — replica did not end with exactly the backlog'}`,
      );
    for (const r of federation.reconcile)
      console.log(
        `  NIP-77 reconcile ${r.n} events ${(r.diff * 100).toFixed(0)} % apart: ${r.rounds} round trips, ${((r.bytesUp + r.bytesDown) / 1024).toFixed(0)} KiB (binary; ×2 as hex)${r.ok ? '' : ' — have/need wrong'}`,
      );
  }
  if (identity) {
    console.log('\nidentity (client side, no relay; one thread):');
    for (const l of identityLines(identity)) console.log(`  ${l}`);
  }
  if (notes.length) {
    console.log('\nnotes:');
    for (const n of notes) console.log(`  - ${n}`);
  }
  const seconds = (performance.now() - t0) / 1000;
  console.log(`\ntotal ${seconds.toFixed(0)} s`);
  if (opts.json) {
    const json = {
      mode: opts.smoke ? 'smoke' : 'full',
      date: new Date().toISOString(),
      machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version },
      sizes: size,
      relays: { subject: { spec: opts.subject, label: names[0] }, peer: { spec: opts.peer, label: names[1] } },
      table: table.map(({ figure, better, subject, peer, ratio, labels }) => ({
        figure,
        better,
        subject: num(subject),
        peer: num(peer),
        ratio: num(ratio),
        ...(labels ? { methods: labels } : {}),
      })),
      results,
      cpu,
      backgroundLoad: Object.fromEntries([...loads].map(([w, l]) => [w, l.map(num)])),
      reference: REFERENCE,
      notes,
      seconds,
    };
    writeFileSync(opts.json, JSON.stringify(json, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2) + '\n');
    log(`wrote ${opts.json}`);
  }
}

function num(v) {
  return Number.isFinite(v) ? v : null;
}

main().then(
  () => process.exit(0),
  (err) => {
    log(`bench failed: ${err instanceof UsageError ? err.message : (err.stack ?? err)}`);
    process.exit(1);
  },
);
