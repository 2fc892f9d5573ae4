// Under attack: an honest client's REQ→EOSE latency with and without a hostile client running the worst of
// the resource attacks of docs/limits.md (issue 14 points 6–8) at once, in alternating phases of the same run on the same relay:
//   - a reader that stops reading: 50 REQs (limit 500) over large stored events, then never reads (point 8);
//   - COUNT floods: ten `{}` filters per COUNT over those events, several in flight (point 7);
//   - quadratic tag matching: a subscription with 1,000 `#x` and 1,000 `#y` values, and ephemeral events with
//     1,000 matching `x` tags and 1,000 non-matching `y` tags published back to back (point 6).
// The honest client asks for 20 small events of its own author every `paceMs`, one REQ at a time.
import { makeIdentity, signToJson } from '../lib/corpus.mjs';
import { closeAll, connect, encode, frameKind, K, sendText, subIdOf } from '../lib/client.mjs';
import { Histogram, median, sleep } from '../lib/stats.mjs';

const LARGE_BYTES = 60_000;
const TAG_VALUES = 1000;

/** Publishes JSON events on one socket, `window` in flight; resolves with the number accepted. */
async function publish(url, events, window = 16) {
  let accepted = 0;
  let answered = 0;
  let sent = 0;
  let wake = () => {};
  const ws = await connect(url, (buf) => {
    if (frameKind(buf) !== K.OK) return;
    answered++;
    if (buf.includes('true')) accepted++;
    wake();
  });
  while (answered < events.length) {
    while (sent < events.length && sent - answered < window) sendText(ws, encode(`["EVENT",${events[sent++]}]`));
    await new Promise((r) => {
      wake = r;
      setTimeout(r, 1000);
    });
  }
  await closeAll([ws]);
  return accepted;
}

/** One honest REQ after another for `durationMs`; the REQ→EOSE latencies in a histogram. */
async function measureHonest(url, author, { durationMs, paceMs }) {
  const hist = new Histogram();
  let pending;
  const ws = await connect(url, (buf) => {
    if (frameKind(buf) === K.EOSE && pending && subIdOf(buf) === pending.id) pending.done();
  });
  const until = performance.now() + durationMs;
  for (let i = 0; performance.now() < until; i++) {
    const id = `h${i}`;
    const t0 = performance.now();
    await new Promise((resolve) => {
      pending = { id, done: resolve };
      setTimeout(resolve, 10_000); // a relay that stopped answering shows as 10 s
      sendText(ws, encode(['REQ', id, { authors: [author], limit: 20 }]));
    });
    hist.record(performance.now() - t0);
    sendText(ws, encode(['CLOSE', id]));
    await sleep(paceMs);
  }
  await closeAll([ws]);
  return { requests: hist.count, p50: hist.quantile(0.5), p99: hist.quantile(0.99), max: hist.quantile(1) };
}

/** Starts the hostile client; `stop()` ends it and resolves with what it got done. */
async function startHostile(url, large, tagEvents) {
  const slow = await connect(url, () => {});
  slow.pause(); // reads nothing from now on
  for (let s = 0; s < 50; s++) sendText(slow, encode(['REQ', `s${s}`, { authors: [large], limit: 500 }]));

  let counts = 0;
  let oks = 0;
  let inflight = 0;
  let wake = () => {};
  const loud = await connect(url, (buf) => {
    const k = frameKind(buf);
    if (k === K.COUNT) counts++;
    else if (k === K.OK) oks++;
    else return;
    inflight--;
    wake();
  });
  const xs = Array.from({ length: TAG_VALUES }, (_, i) => `x${i}`);
  const ys = Array.from({ length: TAG_VALUES }, (_, i) => `y${i}`);
  sendText(loud, encode(['REQ', 'tags', { '#x': xs, '#y': ys }]));
  const countFrame = encode(['COUNT', 'c', ...Array.from({ length: 10 }, () => ({}))]);
  const eventFrames = tagEvents.map((e) => encode(`["EVENT",${e}]`));
  let running = true;
  const loop = (async () => {
    for (let i = 0; running; ) {
      while (running && inflight < 8) {
        sendText(loud, i % 2 ? countFrame : eventFrames[(i >> 1) % eventFrames.length]);
        inflight++;
        i++;
      }
      await new Promise((r) => {
        wake = r;
        setTimeout(r, 50);
      });
    }
  })();
  return {
    async stop() {
      running = false;
      wake();
      await loop;
      const slowCut = slow.readyState !== slow.OPEN;
      slow.terminate();
      await closeAll([loud]);
      return { counts, oks, slowCut };
    },
  };
}

/**
 * Runs the workload on a spawned Roost relay (`spec`); null for other relays. Resolves with the honest client's
 * figures without and under attack, medians over alternating pairs of phases.
 */
export async function runAttack({ size, spec, startRelay, log }) {
  if (!/^roost(:|$)/.test(spec)) return null;
  const full = size.idleConnections >= 1000; // the full run's sizes (smoke: short phases, one round)
  const rounds = size.attackRounds ?? (full ? 3 : 1);
  const phaseMs = size.attackPhaseMs ?? (full ? 4000 : 800);
  const largeEvents = size.attackLargeEvents ?? (full ? 300 : 40);
  const relay = await startRelay(spec);
  try {
    const honest = makeIdentity('attack-honest');
    const hostile = makeIdentity('attack-hostile');
    const now = Math.floor(Date.now() / 1000);
    const body = 'b'.repeat(LARGE_BYTES);
    const seeds = [
      ...Array.from({ length: 20 }, (_, i) => signToJson({ kind: 1, created_at: now - 100 + i, tags: [], content: `honest ${i}` }, honest)),
      ...Array.from({ length: largeEvents }, (_, i) => signToJson({ kind: 1, created_at: now - 1000 + i, tags: [], content: body + i }, hostile)),
    ];
    const stored = await publish(relay.url, seeds);
    if (stored !== seeds.length) throw new Error(`${relay.label}: ${stored}/${seeds.length} attack seed events stored`);
    const tags = [...Array.from({ length: TAG_VALUES }, (_, i) => ['x', `x${i}`]), ...Array.from({ length: TAG_VALUES }, (_, i) => ['y', `z${i}`])];
    const tagEvents = Array.from({ length: 16 }, (_, i) => signToJson({ kind: 20001, created_at: now, tags, content: `tags ${i}` }, hostile));

    const quiet = [];
    const attacked = [];
    const phase = { durationMs: phaseMs, paceMs: 10 };
    for (let r = 0; r < rounds; r++) {
      await sleep(500);
      const q = await measureHonest(relay.url, honest.pubkey, phase);
      quiet.push(q);
      await sleep(500);
      const h = await startHostile(relay.url, hostile.pubkey, tagEvents);
      const a = await measureHonest(relay.url, honest.pubkey, phase);
      const got = await h.stop();
      attacked.push({ ...a, ...got });
      log(
        `  [${relay.label}] attack ${r + 1}/${rounds}: honest REQ→EOSE p99 ${q.p99.toFixed(1)} ms quiet, ${a.p99.toFixed(1)} ms under attack (p50 ${q.p50.toFixed(1)} / ${a.p50.toFixed(1)} ms, max ${q.max.toFixed(0)} / ${a.max.toFixed(0)} ms, ${q.requests} / ${a.requests} REQs); hostile: ${got.counts} COUNTs answered, ${got.oks} tag events, slow reader ${got.slowCut ? 'cut off' : 'still connected'}`,
      );
    }
    const mid = (runs, k) => median(runs.map((x) => x[k]));
    return {
      quiet: { p50: mid(quiet, 'p50'), p99: mid(quiet, 'p99'), requests: mid(quiet, 'requests') },
      attacked: {
        p50: mid(attacked, 'p50'),
        p99: mid(attacked, 'p99'),
        requests: mid(attacked, 'requests'),
        counts: mid(attacked, 'counts'),
        oks: mid(attacked, 'oks'),
      },
      runs: { quiet, attacked },
    };
  } finally {
    await relay.stop();
  }
}
