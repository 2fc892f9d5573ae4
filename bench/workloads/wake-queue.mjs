// Wake-queue throughput: `agents` sleeping agents (never connected) each register one FCM device
// with the relay (kind 29059, NIP-44 encrypted to the relay's key); then publishers send one event
// p-tagging each agent, keeping `window` events in flight. The relay queues a wake per agent in the
// event's commit and sends it to a fake FCM HTTP v1 endpoint on 127.0.0.1 (bench/lib/fake-fcm.mjs).
// Figures: wakes delivered per second (first EVENT sent → last push received) and the latency of
// each wake (its EVENT sent → its push received at the fake), median over rounds with fresh agents.
// The relay's global push rate cap is raised for the run (its default, 100/s, is a policy, not a
// capacity); the per-agent min interval is untouched (each agent is woken once per round).
// Relays without a wake queue (every peer) resolve null.
import { getConversationKey, encrypt } from 'nostr-tools/nip44';
import { connectMany, closeAll, encode, frameKind, K, parseOk, sendText } from '../lib/client.mjs';
import { makeIdentity, signToJson } from '../lib/corpus.mjs';
import { startFakeFcm } from '../lib/fake-fcm.mjs';
import { readCpuMs } from '../lib/relay-process.mjs';
import { Histogram, median, sleep } from '../lib/stats.mjs';

const WAKE_REGISTRATION_KIND = 29059;

/** Wake-queue figures for Roost; null for a relay that has no wake queue. */
export async function runWakeQueue({ size, spec, startRelay, log }) {
  if (!/^roost(:|$)/.test(spec)) return null;
  const agentsPerRound = size.wakeAgents ?? (size.idleConnections >= 1000 ? 2000 : 100);
  const rounds = size.wakeRounds ?? (agentsPerRound >= 1000 ? 3 : 1);
  const publishers = 4;
  const window = 32;
  const timeoutMs = 30_000;

  let onPush = () => {};
  const fcm = await startFakeFcm((token, at) => onPush(token, at));
  const relay = await startRelay(spec, {
    env: {
      ROOST_PUSH_FCM_ACCESS_TOKEN: 'roost-bench-token',
      ROOST_PUSH_FCM_PROJECT_ID: 'roost-bench',
      ROOST_PUSH_FCM_ENDPOINT: fcm.url,
      ROOST_PUSH_GLOBAL_SENDS_PER_SECOND: '1000000',
      ROOST_PUSH_AGENT_WAKES_PER_HOUR: '1000',
    },
  });
  const notes = [];
  try {
    const info = await (await fetch(relay.url.replace(/^ws/, 'http'), { headers: { accept: 'application/nostr+json' } })).json();
    if (!info.wake?.enabled || !info.pubkey) throw new Error(`${relay.label} does not advertise wake (NIP-11 wake.enabled, pubkey)`);

    // Every round's agents, registered up front (not measured).
    const all = Array.from({ length: agentsPerRound * rounds }, (_, i) => {
      const who = makeIdentity(`wake-agent-${i}`);
      return { who, token: `roost-bench-device-${i}` };
    });
    const createdAt = Math.floor(Date.now() / 1000) - 10;
    const registrations = all.map(({ who, token }) => {
      const content = encrypt(JSON.stringify({ channels: [{ platform: 'fcm', token, mode: 'background' }] }), getConversationKey(who.sk, info.pubkey));
      return signToJson({ kind: WAKE_REGISTRATION_KIND, created_at: createdAt, tags: [], content }, who);
    });
    const registered = await publishAll(relay.url, registrations, { publishers, window, timeoutMs });
    if (registered.accepted !== registrations.length)
      throw new Error(`${relay.label}: ${registered.accepted}/${registrations.length} wake registrations accepted ${JSON.stringify(registered.reasons)}`);

    const publisher = makeIdentity('wake-publisher');
    const runs = [];
    for (let r = 0; r < rounds; r++) {
      await sleep(500);
      const batch = all.slice(r * agentsPerRound, (r + 1) * agentsPerRound);
      const events = batch.map(({ who }, i) =>
        signToJson({ kind: 1, created_at: createdAt + 1 + r, tags: [['p', who.pubkey]], content: `wake ${r}/${i}` }, publisher),
      );
      const sentAt = new Map(); // token → EVENT sent
      const tokenOf = new Map(batch.map(({ token }, i) => [events[i].slice(7, 71), token]));
      const hist = new Histogram();
      let received = 0;
      let last = 0;
      let extra = 0;
      onPush = (token, at) => {
        const t0 = sentAt.get(token);
        if (t0 === undefined) {
          extra++;
          return;
        }
        sentAt.delete(token);
        hist.record(at - t0);
        received++;
        last = at;
      };
      const cpu0 = readCpuMs(relay.pid);
      const start = performance.now();
      const published = await publishAll(relay.url, events, { publishers, window, timeoutMs, onSend: (id, at) => sentAt.set(tokenOf.get(id), at) });
      const until = performance.now() + timeoutMs;
      while (received < batch.length && performance.now() < until) await sleep(5);
      const cpu1 = readCpuMs(relay.pid);
      const seconds = ((received === batch.length ? last : performance.now()) - start) / 1000;
      const run = {
        wakes: received,
        expected: batch.length,
        seconds,
        rate: received / seconds,
        p50: hist.quantile(0.5),
        p99: hist.quantile(0.99),
        cpuUs: cpu0 === null || cpu1 === null ? NaN : ((cpu1 - cpu0) * 1000) / Math.max(received, 1),
      };
      log(
        `  [${relay.label}] wake queue ${r + 1}/${rounds}: ${run.rate.toFixed(0)} wakes/s, EVENT → push p50 ${run.p50.toFixed(1)} ms, p99 ${run.p99.toFixed(1)} ms (${received}/${batch.length} wakes), relay CPU ${run.cpuUs.toFixed(0)} µs/wake`,
      );
      if (published.accepted !== events.length)
        notes.push(`wake round ${r + 1}: ${published.accepted}/${events.length} events accepted ${JSON.stringify(published.reasons)}`);
      if (received !== batch.length) notes.push(`wake round ${r + 1}: ${received}/${batch.length} wakes within ${timeoutMs / 1000} s`);
      if (extra) notes.push(`wake round ${r + 1}: ${extra} pushes to devices not expecting one`);
      runs.push(run);
    }
    onPush = () => {};
    return {
      figures: {
        'wake-queue wakes/s': median(runs.map((x) => x.rate)),
        'wake-queue EVENT→push p50 ms': median(runs.map((x) => x.p50)),
        'wake-queue EVENT→push p99 ms': median(runs.map((x) => x.p99)),
        'wake-queue relay CPU µs/wake': median(runs.map((x) => x.cpuUs)),
      },
      runs,
      notes,
    };
  } finally {
    await relay.stop();
    await fcm.close();
  }
}

/**
 * Publishes event JSON texts over `publishers` sockets, `window` in flight on each; `onSend(id, at)`
 * is told when each EVENT goes out. Resolves with `{ accepted, rejected, reasons }` once all are
 * answered or `timeoutMs` passes.
 */
async function publishAll(url, events, { publishers, window, timeoutMs, onSend = () => {} }) {
  const lanes = Array.from({ length: publishers }, () => ({ items: [], next: 0 }));
  events.forEach((json, i) => lanes[i % publishers].items.push({ id: json.slice(7, 71), frame: encode(`["EVENT",${json}]`) }));
  let answered = 0;
  let accepted = 0;
  const reasons = {};
  let finish;
  const done = new Promise((r) => (finish = r));
  const sockets = await connectMany(url, publishers, (c) => (buf) => {
    if (frameKind(buf) !== K.OK) return;
    const ok = parseOk(buf);
    answered++;
    if (ok.accepted) accepted++;
    else reasons[String(ok.reason).slice(0, 60)] = (reasons[String(ok.reason).slice(0, 60)] ?? 0) + 1;
    sendNext(c);
    if (answered === events.length) finish();
  });
  function sendNext(c) {
    const lane = lanes[c];
    if (lane.next >= lane.items.length) return;
    const item = lane.items[lane.next++];
    onSend(item.id, performance.now());
    sendText(sockets[c], item.frame);
  }
  for (let c = 0; c < publishers; c++) for (let k = 0; k < window; k++) sendNext(c);
  const timer = setTimeout(finish, timeoutMs);
  await done;
  clearTimeout(timer);
  await closeAll(sockets);
  return { accepted, rejected: answered - accepted, reasons };
}
