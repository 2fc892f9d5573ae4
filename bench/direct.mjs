#!/usr/bin/env node
/**
 * Direct links vs the relay: message latency (p50/p99) and throughput between two agents in one
 * process, over 127.0.0.1, with a real Roost relay (SQLite in a temp folder).
 *
 * Paths compared:
 * - direct: a WebRTC data channel (node-datachannel), verified; the message is the NIP-17 rumor;
 * - relay, gift wrap: what the fallback really does (NIP-59 seal + wrap, stored, delivered live, unwrapped);
 * - relay, plain: a signed, stored kind-14 event addressed with a p tag (the transport cost without NIP-44).
 * Latency: one message at a time, from send() to the receiver's handler. Throughput: a burst of
 * messages sent at once, until the last is handled. Also the time connect() takes.
 *
 * Then the same direct path through the agent API (`agent.send` → the peer's `onMessage`), with the
 * agents' state in memory and in SQLite (what the agent keeps durable for a direct message: the
 * sender parks the rumor before it goes out, the receiver records its id before acknowledging).
 *
 *   npm run build && node bench/direct.mjs [--latency 300] [--burst 2000] [--wrapBurst 200] [--size 1024] [--connects 5] [--agents 1]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import WebSocket from 'ws';
import { createRumor, createSeal, createWrap, unwrapEvent } from 'nostr-tools/nip59';
import { finalizeEvent, generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import { Relay, useWebSocketImplementation } from 'nostr-tools/relay';
import { buildRelay } from '../dist/relay/app.js';
import { loadConfig } from '../dist/relay/config.js';
import { loadNodeRtc } from '../dist/client/node/rtc.js';
import * as directModule from '../dist/client/transport/index.js';
import { createRelaySignalling, DirectTransport } from '../dist/client/transport/index.js';
import { MemoryStore, createAgent, createNodeAgent, Identity, NodeWebSocket } from '../dist/client/node/index.js';

useWebSocketImplementation(WebSocket);
const args = Object.fromEntries(process.argv.slice(2).flatMap((a, i, all) => (a.startsWith('--') ? [[a.slice(2), Number(all[i + 1])]] : [])));
const LATENCY = args.latency ?? 300;
const BURST = args.burst ?? 2000;
const WRAP_BURST = args.wrapBurst ?? 200;
const SIZE = args.size ?? 1024;
const CONNECTS = args.connects ?? 5;
const AGENTS = args.agents ?? 1;

const dir = mkdtempSync(join(tmpdir(), 'roost-bench-direct-'));
const config = loadConfig({ port: 0, host: '127.0.0.1', logLevel: 'silent', db: join(dir, 'roost.db'), rateLimit: false });
const relay = await buildRelay(config, { log: pino({ level: 'silent' }) });
const url = (await relay.app.listen({ port: 0, host: '127.0.0.1' })).replace(/^http/, 'ws');
const rtc = await loadNodeRtc({ bindAddress: '127.0.0.1' });

/** A bench agent: transport over a real relay; `waiters` resolve when a message id is handled. */
async function agent() {
  const sk = generateSecretKey();
  const pubkey = getPublicKey(sk);
  const identity = { pubkey, sign: (t) => finalizeEvent(t, sk), exportSecretKey: () => sk.slice() };
  const r = new Relay(url);
  r.publishTimeout = 120_000;
  await r.connect();
  while (!r.challenge) await new Promise((res) => setTimeout(res, 5));
  await r.auth(async (t) => finalizeEvent(t, sk));
  const waiters = new Map();
  const handled = (id) => {
    const w = waiters.get(id);
    if (w) {
      waiters.delete(id);
      w();
    }
  };
  const signalling = createRelaySignalling(identity, [
    {
      publish: (e) => r.publish(e),
      subscribe: (f, on) => {
        const s = r.subscribe([f], { onevent: on });
        return () => s.close();
      },
    },
  ]);
  const transport = new DirectTransport({
    identity,
    signalling,
    rtc,
    host: { receive: (_from, msg) => handled(msg.id) },
  });
  r.subscribe([{ kinds: [1059], '#p': [pubkey], limit: 0 }], { onevent: (w) => handled(unwrapEvent(w, sk).id) });
  r.subscribe([{ kinds: [14], '#p': [pubkey], limit: 0 }], { onevent: (e) => handled(e.id) });
  return {
    pubkey,
    transport,
    expect: (id) => new Promise((res) => waiters.set(id, res)),
    rumor: (peer, content) => createRumor({ kind: 14, content, tags: [['p', peer]], created_at: Math.floor(Date.now() / 1000) }, sk),
    plain: (peer, content) => finalizeEvent({ kind: 14, content, tags: [['p', peer]], created_at: Math.floor(Date.now() / 1000) }, sk),
    publish: (e) => r.publish(e),
    sk,
    close: () => {
      transport.close();
      signalling.close();
      r.close();
    },
  };
}

const pct = (xs, p) => xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
const fmt = (ms) => `${ms.toFixed(ms < 1 ? 3 : 1)} ms`;
let counter = 0;
/** Unique content of `n` characters (a rumor's id is the hash of its content and second). */
const payload = (n) => {
  const head = `${++counter}:`;
  return head + 'x'.repeat(Math.max(0, n - head.length));
};

const a = await agent();
const b = await agent();

// connect() time, fresh link each time
const connectMs = [];
let connectFailures = 0;
for (let i = 0; i < CONNECTS; i++) {
  const t0 = performance.now();
  try {
    await a.transport.connect(b.pubkey);
  } catch (err) {
    // libdatachannel now and then drops a loopback attempt; connect() already retried it.
    connectFailures++;
    console.error(`connect() failed: ${err.message}`);
    i--;
    continue;
  }
  connectMs.push(performance.now() - t0);
  if (i < CONNECTS - 1) {
    a.transport.disconnect(b.pubkey);
    while (b.transport.state(a.pubkey)) await new Promise((r) => setTimeout(r, 5));
  }
}
connectMs.sort((x, y) => x - y);

// build() does a path's crypto (rumor hash; gift wrap; signature); go() sends and resolves when
// the receiver has handled the message. Sender-side completion (the peer's ack, the relay's OK)
// is collected in `settle` and awaited outside the timing.
const paths = {
  direct: (content) => {
    const rumor = a.rumor(b.pubkey, content);
    const msg = { id: rumor.id, data: JSON.stringify(rumor) };
    return (settle) => {
      const done = b.expect(msg.id);
      settle.push(
        a.transport.send(b.pubkey, msg).then((acked) => {
          if (!acked) throw new Error('expected the direct path');
        }),
      );
      return done;
    };
  },
  'relay, gift wrap': (content) => {
    const rumor = a.rumor(b.pubkey, content);
    const wrap = createWrap(createSeal(rumor, a.sk, b.pubkey), b.pubkey);
    return (settle) => {
      const done = b.expect(rumor.id);
      settle.push(a.publish(wrap));
      return done;
    };
  },
  'relay, plain': (content) => {
    const ev = a.plain(b.pubkey, content);
    return (settle) => {
      const done = b.expect(ev.id);
      settle.push(a.publish(ev));
      return done;
    };
  },
};

const results = [];
for (const [name, build] of Object.entries(paths)) {
  const settle = [];
  for (let i = 0; i < 20; i++) await build(payload(200))(settle); // warm-up
  const lat = [];
  for (let i = 0; i < LATENCY; i++) {
    const t0 = performance.now();
    await build(payload(200))(settle);
    lat.push(performance.now() - t0);
    await settle.pop();
  }
  await Promise.all(settle.splice(0));
  lat.sort((x, y) => x - y);
  const n = name === 'relay, gift wrap' ? WRAP_BURST : BURST;
  const ready = Array.from({ length: n }, () => build(payload(SIZE)));
  const t0 = performance.now();
  await Promise.all(ready.map((go) => go(settle)));
  const secs = (performance.now() - t0) / 1000;
  await Promise.all(settle.splice(0));
  results.push({ path: name, p50: pct(lat, 50), p99: pct(lat, 99), burst: n, msgsPerSec: n / secs, mibPerSec: (n * SIZE) / secs / 1048576 });
}

a.close();
b.close();

/** Two agents with direct links on; `store`: 'memory' or 'sqlite' (synchronous FULL, the default). */
async function agentPair(store) {
  const make = () => {
    const link = { reconnectBaseMs: 50, reconnectMaxMs: 400, authWaitMs: 300 };
    const common = { relays: [url], heartbeatSeconds: 0, link };
    if (store === 'sqlite') return createNodeAgent({ ...common, home: mkdtempSync(join(dir, 'agent-')) });
    return createAgent({ ...common, identity: Identity.generate(), store: new MemoryStore(), WebSocket: NodeWebSocket });
  };
  const x = make();
  const y = make();
  const waiters = new Map();
  y.onMessage((m) => {
    const w = waiters.get(m.content);
    if (w) {
      waiters.delete(m.content);
      w(m.relay);
    }
  });
  for (const ag of [x, y]) ag.enableDirect({ direct: directModule, rtc });
  await x.start();
  await y.start();
  await Promise.all([x.whenConnected(), y.whenConnected()]);
  for (let i = 0; ; i++) {
    try {
      await x.connectDirect(y.pubkey);
      break;
    } catch (err) {
      if (i >= 3) throw err;
    }
  }
  const expect = (text) => new Promise((res) => waiters.set(text, res));
  return {
    x,
    y,
    expect,
    close: async () => {
      await x.close();
      await y.close();
    },
  };
}

for (const store of AGENTS ? ['memory', 'sqlite'] : []) {
  const pair = await agentPair(store);
  const send = (text, settle) => {
    const done = pair.expect(text);
    settle.push(
      pair.x.send(pair.y.pubkey, text).then((r) => {
        if (r.path !== 'direct') throw new Error('expected the direct path');
      }),
    );
    return done;
  };
  const settle = [];
  for (let i = 0; i < 20; i++) await send(payload(200), settle);
  await Promise.all(settle.splice(0));
  const lat = [];
  for (let i = 0; i < LATENCY; i++) {
    const t0 = performance.now();
    await send(payload(200), settle);
    lat.push(performance.now() - t0);
    await settle.pop();
  }
  lat.sort((p, q) => p - q);
  const texts = Array.from({ length: BURST }, () => payload(SIZE));
  const t0 = performance.now();
  await Promise.all(texts.map((t) => send(t, settle)));
  const secs = (performance.now() - t0) / 1000;
  await Promise.all(settle.splice(0));
  results.push({
    path: `direct, agent API (${store} store)`,
    p50: pct(lat, 50),
    p99: pct(lat, 99),
    burst: BURST,
    msgsPerSec: BURST / secs,
    mibPerSec: (BURST * SIZE) / secs / 1048576,
  });
  await pair.close();
}

console.log(
  `direct links vs relay — latency: ${LATENCY} sequential 200 B messages, build (crypto) + send until handled; throughput: a burst of ${SIZE} B messages built beforehand, until all handled`,
);
console.log(
  `connect(): p50 ${fmt(pct(connectMs, 50))}, max ${fmt(connectMs.at(-1))} over ${CONNECTS} fresh links (${rtc.name}, 127.0.0.1); ${connectFailures} connect() calls failed after their internal retries`,
);
console.log('| path | latency p50 | latency p99 | burst | msgs/s | MiB/s |');
console.log('| --- | --- | --- | --- | --- | --- |');
for (const r of results) console.log(`| ${r.path} | ${fmt(r.p50)} | ${fmt(r.p99)} | ${r.burst} | ${r.msgsPerSec.toFixed(0)} | ${r.mibPerSec.toFixed(2)} |`);

await relay.close();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
