#!/usr/bin/env node
/**
 * Mailbox backfill benchmark: one agent with a large mailbox (default 100 000 events addressed to it with
 * a `p` tag, kind 4, ~250 bytes of content) catches up from cursor 0 through the sequence extension.
 *
 * The relay runs from dist/ as a child process (PORT, HOST, ROOST_DB), on a database seeded once through the
 * socket and cached in .bench-cache/. Figures, each the median of --runs runs after one warm-up:
 *   - tail mode: one REQ {"#p":[agent],"seq_after":0}; events/s and MB/s from REQ to EOSE;
 *   - page mode: client-driven pages of --page events (REQ … limit, next REQ from the EOSE cursor);
 *   - page latency at depth: one page of --page events from cursors at 0 %, 50 % and 99 % of the mailbox.
 * Every run checks it got every event once, in ascending seq order. Not a test: nothing is asserted on time.
 *
 *   npm run build && node bench/backfill.mjs [--events 100000] [--runs 5] [--page 500] [--senders 50] [--json FILE]
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import * as secp from 'tiny-secp256k1';
import WebSocket from 'ws';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const MAIN = process.env.BENCH_RELAY_MAIN ?? join(ROOT, 'dist/relay/main.js');

function parseArgs(argv) {
  const o = { events: 100_000, runs: 5, page: 500, senders: 50, json: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[++i];
    if (v === undefined) throw new Error(`${a} needs a value`);
    if (a === '--json') o.json = v;
    else if (['--events', '--runs', '--page', '--senders'].includes(a)) o[a.slice(2)] = Number(v);
    else throw new Error(`unknown argument ${a}`);
  }
  return o;
}
const opts = parseArgs(process.argv.slice(2));

// --- keys and events ----------------------------------------------------------------------------------
const keyFrom = (label) => {
  const sk = createHash('sha256').update(`roost-bench-backfill:${label}`).digest();
  return { sk, pk: Buffer.from(secp.xOnlyPointFromScalar(sk)).toString('hex') };
};
const AGENT = keyFrom('agent');

function sign(key, kind, tags, content, createdAt) {
  const body = [0, key.pk, createdAt, kind, tags, content];
  const id = createHash('sha256').update(JSON.stringify(body)).digest();
  const sig = Buffer.from(secp.signSchnorr(id, key.sk, randomBytes(32))).toString('hex');
  return { id: id.toString('hex'), pubkey: key.pk, created_at: createdAt, kind, tags, content, sig };
}

/** Kernel clock ticks per second for /proc CPU times (USER_HZ, 100 on Linux). */
const CLOCK_TICKS = 100;

// --- relay process ------------------------------------------------------------------------------------
function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

async function startRelay(db, extraEnv = {}) {
  const port = await freePort();
  const child = spawn(process.execPath, [...(process.env.BENCH_RELAY_NODE_ARGS ?? '').split(' ').filter(Boolean), MAIN], {
    env: {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      ROOST_DB: db,
      ROOST_LOG_LEVEL: 'warn',
      ROOST_MAILBOX_QUOTA: '0',
      ...extraEnv,
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise((r) => child.once('exit', (code) => r(code)));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`relay exited with ${child.exitCode}`);
    try {
      if ((await fetch(`http://127.0.0.1:${port}/health`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error('relay did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `ws://127.0.0.1:${port}`,
    /** CPU time (user + system) the relay process has used so far, in ms (Linux /proc; NaN elsewhere). */
    cpuMs() {
      try {
        const fields = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1].split(' ');
        return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
      } catch {
        return NaN;
      }
    },
    async stop() {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

// --- client -------------------------------------------------------------------------------------------
function connect(url) {
  return new Promise((res, rej) => {
    const ws = new WebSocket(url, { maxPayload: 64 * 1024 * 1024 });
    const queue = [];
    let waiter;
    ws.on('message', (data) => {
      const text = data.toString();
      if (waiter?.pred(text)) {
        const w = waiter;
        waiter = undefined;
        w.resolve(text);
      } else queue.push(text);
    });
    ws.once('open', () =>
      res({
        ws,
        /** Next frame matching pred (queued ones first). */
        next(pred) {
          const i = queue.findIndex(pred);
          if (i >= 0) return Promise.resolve(queue.splice(i, 1)[0]);
          return new Promise((resolve) => (waiter = { pred, resolve }));
        },
      }),
    );
    ws.once('error', rej);
  });
}

async function authenticate(c, key, url) {
  // Roost challenges on demand by default: a REQ for private kinds brings AUTH (and CLOSED auth-required).
  c.ws.send(JSON.stringify(['REQ', 'auth-probe', { kinds: [4], limit: 1 }]));
  const challenge = JSON.parse(await c.next((t) => t.startsWith('["AUTH"')))[1];
  const ev = sign(
    key,
    22242,
    [
      ['relay', url],
      ['challenge', challenge],
    ],
    '',
    Math.floor(Date.now() / 1000),
  );
  c.ws.send(JSON.stringify(['AUTH', ev]));
  const ok = JSON.parse(await c.next((t) => t.startsWith('["OK"') && t.includes(ev.id)));
  if (ok[2] !== true) throw new Error(`AUTH refused: ${ok[3]}`);
}

/**
 * Reads EVENT frames of `subId` until its EOSE, without parsing the events: each frame's seq is read
 * from its tail. Checks strictly ascending seqs; returns count, bytes, last seq and the EOSE extras.
 */
function readUntilEose(ws, subId, afterSeq) {
  const prefix = `["EVENT",${JSON.stringify(subId)},`;
  const eose = `["EOSE",${JSON.stringify(subId)}`;
  return new Promise((res, rej) => {
    let n = 0;
    let bytes = 0;
    let last = afterSeq;
    const onMessage = (data) => {
      const t = data.toString();
      if (t.startsWith(prefix)) {
        const m = /,\{"seq":(\d+)\}\]$/.exec(t);
        const seq = m ? Number(m[1]) : NaN;
        if (!(seq > last)) {
          ws.off('message', onMessage);
          rej(new Error(`seq ${seq} not after ${last}`));
          return;
        }
        last = seq;
        n++;
        bytes += t.length;
      } else if (t.startsWith(eose)) {
        ws.off('message', onMessage);
        res({ n, bytes, last, ...JSON.parse(t)[2] });
      } else if (t.startsWith('["CLOSED"')) {
        ws.off('message', onMessage);
        rej(new Error(t));
      }
    };
    ws.on('message', onMessage);
  });
}

// --- seeding ------------------------------------------------------------------------------------------
async function seed(db) {
  const tmp = `${db}.seeding`;
  for (const f of [tmp, `${tmp}-wal`, `${tmp}-shm`, `${tmp}.key`]) rmSync(f, { force: true });
  const relay = await startRelay(tmp, { ROOST_SYNC_MODE: 'normal', ROOST_COMMIT_WINDOW_MS: '5' });
  const senders = Array.from({ length: opts.senders }, (_, i) => keyFrom(`sender${i}`));
  const connections = await Promise.all(Array.from({ length: 4 }, () => connect(relay.url)));
  const t0 = performance.now();
  const now = Math.floor(Date.now() / 1000);
  const WINDOW = 256;
  let sent = 0;
  let acked = 0;
  await Promise.all(
    connections.map(
      (c, ci) =>
        new Promise((done, fail) => {
          let inFlight = 0;
          let mine = 0;
          const base = Math.floor(opts.events / connections.length);
          const quota = ci === connections.length - 1 ? opts.events - base * (connections.length - 1) : base;
          const pump = () => {
            while (inFlight < WINDOW && mine < quota) {
              const i = sent++;
              mine++;
              inFlight++;
              const from = senders[i % senders.length];
              const content = randomBytes(180).toString('base64') + '?iv=' + randomBytes(16).toString('base64');
              c.ws.send(JSON.stringify(['EVENT', sign(from, 4, [['p', AGENT.pk]], content, now - opts.events + i)]));
            }
            if (mine === quota && inFlight === 0) done();
          };
          c.ws.on('message', (data) => {
            const f = JSON.parse(data.toString());
            if (f[0] !== 'OK') return;
            if (f[2] !== true) return fail(new Error(`seed event refused: ${f[3]}`));
            inFlight--;
            if (++acked % 10_000 === 0) process.stderr.write(`  seeded ${acked}/${opts.events}\n`);
            pump();
          });
          pump();
        }),
    ),
  );
  const seconds = (performance.now() - t0) / 1000;
  for (const c of connections) c.ws.close();
  await relay.stop();
  for (const suffix of ['', '-wal', '-shm', '.key']) if (existsSync(tmp + suffix)) renameSync(tmp + suffix, db + suffix);
  console.log(`seeded ${opts.events} events through the socket in ${seconds.toFixed(1)} s (${Math.round(opts.events / seconds)} events/s)`);
}

// --- measurements -------------------------------------------------------------------------------------
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

async function tailRun(relay) {
  const url = relay.url;
  const c = await connect(url);
  await authenticate(c, AGENT, url);
  const cpu0 = relay.cpuMs();
  const t0 = performance.now();
  c.ws.send(JSON.stringify(['REQ', 'inbox', { '#p': [AGENT.pk], seq_after: 0 }]));
  const r = await readUntilEose(c.ws, 'inbox', 0);
  const ms = performance.now() - t0;
  const cpu = relay.cpuMs() - cpu0;
  c.ws.close();
  if (r.n !== opts.events || r.more !== false) throw new Error(`tail run got ${r.n} events (more ${r.more})`);
  return { ms, cpu, bytes: r.bytes };
}

async function pageRun(relay) {
  const url = relay.url;
  const c = await connect(url);
  await authenticate(c, AGENT, url);
  const cpu0 = relay.cpuMs();
  const t0 = performance.now();
  let cursor = 0;
  let n = 0;
  let bytes = 0;
  for (;;) {
    c.ws.send(JSON.stringify(['REQ', 'inbox', { '#p': [AGENT.pk], seq_after: cursor, limit: opts.page }]));
    const r = await readUntilEose(c.ws, 'inbox', cursor);
    n += r.n;
    bytes += r.bytes;
    cursor = r.cursor;
    if (!r.more) break;
  }
  const ms = performance.now() - t0;
  const cpu = relay.cpuMs() - cpu0;
  c.ws.close();
  if (n !== opts.events) throw new Error(`page run got ${n} events`);
  return { ms, cpu, bytes };
}

/** Time for one page starting at each depth, median over repeats. */
async function depthRun(url, seqs) {
  const c = await connect(url);
  await authenticate(c, AGENT, url);
  const out = {};
  for (const [label, after] of seqs) {
    const times = [];
    for (let i = 0; i < 15; i++) {
      const t0 = performance.now();
      c.ws.send(JSON.stringify(['REQ', `d${i}`, { '#p': [AGENT.pk], seq_after: after, limit: opts.page }]));
      const r = await readUntilEose(c.ws, `d${i}`, after);
      times.push(performance.now() - t0);
      if (r.n === 0) throw new Error(`empty page at ${after}`);
    }
    out[label] = median(times);
  }
  c.ws.close();
  return out;
}

async function main() {
  if (!existsSync(MAIN)) throw new Error('dist/ is missing: run `npm run build` first');
  const cacheDir = join(ROOT, '.bench-cache');
  mkdirSync(cacheDir, { recursive: true });
  const db = join(cacheDir, `backfill-${opts.events}.db`);
  if (!existsSync(db)) await seed(db);
  else console.log(`using cached mailbox ${db}`);

  const relay = await startRelay(db);
  try {
    const tail = [];
    const pages = [];
    await tailRun(relay); // warm-up: page cache, JIT
    for (let i = 0; i < opts.runs; i++) {
      tail.push(await tailRun(relay));
      pages.push(await pageRun(relay));
    }
    const last = opts.events;
    const depth = await depthRun(relay.url, [
      ['0%', 0],
      ['50%', Math.floor(last * 0.5)],
      ['99%', Math.floor(last * 0.99) - opts.page],
    ]);
    const rate = (runs) => median(runs.map((r) => (opts.events / r.ms) * 1000));
    const mbps = (runs) => median(runs.map((r) => r.bytes / 1e6 / (r.ms / 1000)));
    const figures = {
      events: opts.events,
      'tail events/s': Math.round(rate(tail)),
      'tail MB/s': Number(mbps(tail).toFixed(1)),
      'tail s': Number((median(tail.map((r) => r.ms)) / 1000).toFixed(2)),
      'tail relay CPU us/event': Number(((median(tail.map((r) => r.cpu)) * 1000) / opts.events).toFixed(2)),
      [`page(${opts.page}) events/s`]: Math.round(rate(pages)),
      [`page(${opts.page}) s`]: Number((median(pages.map((r) => r.ms)) / 1000).toFixed(2)),
      [`page(${opts.page}) relay CPU us/event`]: Number(((median(pages.map((r) => r.cpu)) * 1000) / opts.events).toFixed(2)),
      ...Object.fromEntries(Object.entries(depth).map(([k, v]) => [`one page at ${k} depth ms`, Number(v.toFixed(2))])),
    };
    const machine = `${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, node ${process.version}`;
    console.log(`\nMailbox backfill, ${opts.events} events to one agent, median of ${opts.runs} runs (${machine})`);
    for (const [k, v] of Object.entries(figures)) console.log(`  ${k.padEnd(28)} ${v}`);
    if (opts.json) writeFileSync(opts.json, JSON.stringify({ figures, machine, runs: { tail, pages, depth } }, null, 2));
  } finally {
    await relay.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
