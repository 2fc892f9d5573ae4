#!/usr/bin/env node
/**
 * Agent client benchmark over a real relay on 127.0.0.1 (SQLite, synchronous=FULL on both sides).
 *
 *   npm run build && node bench/client.mjs [--messages 300]
 *
 * Reports: acknowledged DM sends awaited one by one (latency per send), the same number queued at once
 * (the outbox lane keeps them ordered), an offline recipient draining its backlog (unwrap, handler,
 * cursor and seen-id commit per message), and live one-way latency from send() to the handler.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { buildRelay } from '../dist/relay/app.js';
import { loadConfig } from '../dist/relay/config.js';
import { Identity, createNodeAgent } from '../dist/client/node/index.js';

const argv = process.argv.slice(2);
const N = Number(argv[argv.indexOf('--messages') + 1]) || 300;
const dir = mkdtempSync(join(tmpdir(), 'roost-bench-client-'));
const quantile = (xs, q) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];
const fmt = (ms) => `${ms.toFixed(2)} ms`;

const relay = await buildRelay(loadConfig({ db: join(dir, 'relay.db'), logLevel: 'silent' }), { log: pino({ level: 'silent' }) });
const address = await relay.app.listen({ port: 0, host: '127.0.0.1' });
const url = address.replace(/^http/, 'ws');
const common = { relays: [url], heartbeatSeconds: 0, link: { authWaitMs: 300 } };

const alice = createNodeAgent({ ...common, home: join(dir, 'alice'), inbox: false });
await alice.start();
await alice.whenConnected();
const bobId = Identity.generate();

// 1. One at a time: each send waits for OK true.
const lat = [];
let t0 = performance.now();
for (let i = 0; i < N; i++) {
  const s = performance.now();
  await alice.send(bobId.pubkey, `sequential ${i}`);
  lat.push(performance.now() - s);
}
const seqMs = performance.now() - t0;

// 2. Queued at once: durable outbox entries, one lane per relay, sent in order.
t0 = performance.now();
await Promise.all(Array.from({ length: N }, (_, i) => alice.send(bobId.pubkey, `queued ${i}`)));
const queuedMs = performance.now() - t0;

// 3. The recipient comes online and drains 2N messages.
let got = 0;
const bob = createNodeAgent({ ...common, home: join(dir, 'bob'), identity: bobId });
bob.onMessage(() => {
  got++;
});
t0 = performance.now();
await bob.start();
while (got < 2 * N) await new Promise((r) => setTimeout(r, 2));
await bob.inboxIdle();
const drainMs = performance.now() - t0;

// 4. Live one-way latency: send() called → recipient's handler.
const live = [];
let mark = 0;
let seen = 0;
bob.onMessage(() => {
  live.push(performance.now() - mark);
  seen++;
});
for (let i = 0; i < 100; i++) {
  mark = performance.now();
  await alice.send(bobId.pubkey, `live ${i}`);
  while (seen <= i) await new Promise((r) => setImmediate(r));
}

console.log(`agent client over one relay on 127.0.0.1, ${N} messages, node ${process.version}`);
console.log(`  acked sends, one at a time : ${(N / (seqMs / 1000)).toFixed(0)} msg/s; latency p50 ${fmt(quantile(lat, 0.5))}, p99 ${fmt(quantile(lat, 0.99))}`);
console.log(`  acked sends, queued at once: ${(N / (queuedMs / 1000)).toFixed(0)} msg/s (${fmt(queuedMs)} for ${N})`);
console.log(`  offline backlog drain      : ${((2 * N) / (drainMs / 1000)).toFixed(0)} msg/s (${fmt(drainMs)} for ${2 * N}, connect included)`);
console.log(`  live send() → handler      : p50 ${fmt(quantile(live, 0.5))}, p99 ${fmt(quantile(live, 0.99))}`);

await alice.close();
await bob.close();
await relay.close();
rmSync(dir, { recursive: true, force: true });
