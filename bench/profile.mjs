#!/usr/bin/env node
// Profiles Roost under one workload: starts dist/relay/main.js with --cpu-prof (pre-loaded with the
// store corpus for ingest and query), runs the workload, stops the relay so V8 writes its profiles,
// and prints where the CPU went (self time by function and by file, main thread and workers).
//
//   node bench/profile.mjs ingest|query:author|query:tag|query:addressable|fanout|idle|storm[:since|:seq|:private] [--seconds N] [--keep DIR] [--subject roost|roost-traced]
//   (--subject roost-traced: the relay exports its spans over OTLP to a sink in this process)
//   (storm: --runs N storms of 5,000 agents through 500 sockets; the first is the cold one)
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadFanoutCorpus, loadIngestCorpus, loadStoreCorpus } from './lib/corpus.mjs';
import { readCpuMs, startRelay } from './lib/relay-process.mjs';
import { startSeeded } from './lib/seed.mjs';
import { openSubscribers, runFanoutRound } from './workloads/fanout.mjs';
import { runIdle } from './workloads/idle.mjs';
import { runIngest } from './workloads/ingest.mjs';
import { loadStormCorpus, runStorm } from './workloads/storm.mjs';
import { buildFilters, QUERY_SHAPES, runQuery } from './workloads/query.mjs';
import { sleep } from './lib/stats.mjs';

const SIZE = {
  publishers: 8,
  window: 64,
  ingestEvents: 200_000,
  mailbox: 100_000,
  authors: 500,
  perAuthor: 20,
  targets: 500,
  addrPerAuthor: 4,
  subscribers: 500,
  fanoutPublishers: 2,
  fanoutEvents: 1500,
  fanoutRounds: 3,
  stormAgents: 5000,
  stormPerAgent: 20,
};

const args = process.argv.slice(2);
const workload = args[0];
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const seconds = Number(opt('--seconds', '8'));
const keep = opt('--keep', null);
const subject = opt('--subject', 'roost');
const log = (m) => process.stderr.write(`${m}\n`);

const profDir = keep ?? mkdtempSync(join(tmpdir(), 'roost-prof-'));
const nodeArgs = ['--cpu-prof', '--cpu-prof-dir', profDir, '--cpu-prof-interval', '250'];

async function main() {
  let relay;
  let summary;
  let cpu0;
  const durationMs = seconds * 1000;
  if (workload === 'ingest' || workload.startsWith('query')) {
    const store = loadStoreCorpus(SIZE, log);
    relay = await startSeeded(subject, store, { log, relayOptions: { nodeArgs } });
    await sleep(1000); // an idle gap that marks where start-up ends in the profile
    cpu0 = readCpuMs(relay.pid);
    if (workload === 'ingest') {
      const events = loadIngestCorpus(SIZE, log).events.slice(0, 40_000);
      const r = await runIngest(relay.url, events, { connections: 8, window: 64, durationMs });
      summary = { units: r.accepted, unit: 'event', text: `${r.rate.toFixed(0)} events/s, OK p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms` };
    } else {
      const shape = QUERY_SHAPES[workload.split(':')[1] ?? 'author'];
      const r = await runQuery(relay.url, buildFilters(shape, store, 100_000, 7), { connections: 8, durationMs });
      summary = {
        units: r.queries,
        unit: 'query',
        text: `${r.rate.toFixed(0)} q/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, ${r.eventsPerQuery} events/query`,
      };
    }
  } else if (workload === 'fanout') {
    const data = loadFanoutCorpus(SIZE, log);
    relay = await startRelay(subject, { nodeArgs });
    const subs = await openSubscribers(relay.url, data.targets, SIZE.subscribers);
    await sleep(1000);
    cpu0 = readCpuMs(relay.pid);
    const r = await runFanoutRound(relay.url, subs, data.events, { publishers: 2, window: 8, durationMs });
    summary = { units: r.deliveries, unit: 'delivery', text: `${r.rate.toFixed(0)} deliveries/s, p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms` };
    await subs.close();
  } else if (workload === 'idle') {
    relay = await startRelay(subject, { nodeArgs });
    await sleep(1000);
    cpu0 = readCpuMs(relay.pid);
    const r = await runIdle(relay.url, relay.pid, { count: 2000 });
    summary = { units: 2000, unit: 'connection', text: `${r.perConnectionKiB.toFixed(1)} KiB per connection` };
  } else if (workload.startsWith('storm')) {
    const form = workload.split(':')[1] ?? 'since';
    const corpus = loadStormCorpus(SIZE, log);
    relay = await startSeeded(subject, corpus.both, { log, relayOptions: { nodeArgs } });
    await sleep(1000);
    cpu0 = readCpuMs(relay.pid);
    const runs = Number(opt('--runs', '3'));
    let agents = 0;
    const texts = [];
    for (let i = 0; i < runs; i++) {
      const c = readCpuMs(relay.pid);
      const r = await runStorm(relay.url, corpus, form, { sockets: 500 });
      const us = ((readCpuMs(relay.pid) - c) * 1000) / r.agents;
      agents += r.agents;
      texts.push(`${r.rate.toFixed(0)} agents/s p99 ${r.p99.toFixed(0)} ms ${us.toFixed(0)} µs/agent${r.ok === r.agents ? '' : ` (${r.agents - r.ok} wrong)`}`);
    }
    summary = { units: agents, unit: 'agent', text: `storm ${form}: ${texts.join('; ')}` };
  } else throw new Error(`unknown workload ${workload}`);
  const cpuMs = readCpuMs(relay.pid) - cpu0;
  await relay.stop();
  log(`${workload}: ${summary.text}; relay CPU ${cpuMs.toFixed(0)} ms = ${((cpuMs * 1000) / summary.units).toFixed(1)} µs per ${summary.unit}`);
  for (const f of readdirSync(profDir)
    .filter((n) => n.endsWith('.cpuprofile'))
    .sort())
    report(join(profDir, f));
  if (!keep) rmSync(profDir, { recursive: true, force: true });
}

function report(file) {
  const p = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const label = (n) => {
    const cf = n.callFrame;
    const where = cf.url ? cf.url.replace(/^.*\/(node_modules\/)?/, (_m, nm) => (nm ? 'nm/' : '')) : '';
    return `${cf.functionName || '(anon)'} ${where}:${cf.lineNumber + 1}`;
  };
  const fileOf = (n) => {
    const cf = n.callFrame;
    if (!cf.url) return cf.functionName;
    return cf.url.includes('node_modules') ? cf.url.replace(/^.*node_modules\/((@[^/]+\/)?[^/]+).*$/, 'nm:$1') : cf.url.replace(/^.*\/dist\//, '');
  };
  // Skip start-up: samples before the end of the first idle stretch of at least 700 ms.
  let t = p.startTime;
  let from = 0;
  let idleSince = null;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    const idle = byId.get(p.samples[i]).callFrame.functionName === '(idle)';
    if (idle) idleSince ??= t;
    else if (idleSince !== null) {
      if (t - idleSince >= 700_000) {
        from = i;
        break;
      }
      idleSince = null;
    }
  }
  const self = new Map();
  const incl = new Map();
  const perFile = new Map();
  let total = 0;
  let idleUs = 0;
  for (let i = from; i < p.samples.length; i++) {
    const us = p.timeDeltas[i + 1] ?? 0;
    const n = byId.get(p.samples[i]);
    if (n.callFrame.functionName === '(idle)') {
      idleUs += us;
      continue;
    }
    total += us;
    self.set(label(n), (self.get(label(n)) ?? 0) + us);
    perFile.set(fileOf(n), (perFile.get(fileOf(n)) ?? 0) + us);
    const seen = new Set();
    for (let id = n.id; id !== undefined; id = parent.get(id)) {
      const k = label(byId.get(id));
      if (seen.has(k)) continue;
      seen.add(k);
      incl.set(k, (incl.get(k) ?? 0) + us);
    }
  }
  const name = file.replace(/^.*\//, '');
  log(`\n== ${name}: ${(total / 1000).toFixed(0)} ms busy, ${(idleUs / 1000).toFixed(0)} ms idle (after start-up)`);
  const top = (m, n, skip = () => false) =>
    [...m.entries()]
      .filter(([k]) => !skip(k))
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, us]) => `  ${((us / total) * 100).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(6)} ms  ${k}`)
      .join('\n');
  log('-- self time by file');
  log(top(perFile, 20));
  log('-- self time by function');
  log(top(self, 40));
  log('-- inclusive time by function');
  log(top(incl, 40, (k) => k.startsWith('(root)') || k.startsWith('(program)')));
}

main().catch((err) => {
  log(err.stack);
  process.exit(1);
});
