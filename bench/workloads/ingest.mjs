// Ingest: `connections` publishers, each keeping `window` signed events in flight (a new EVENT goes
// out as each OK comes back). Figures: accepted events per second and OK latency (EVENT sent → OK
// read). A round ends when its events run out or, after `durationMs`, once the events in flight
// are answered; it never outlives `timeoutMs`. With `rate`, events are offered at that many per second
// in all (still at most `window` in flight per connection): relays compared at one offered rate commit
// groups of like size, so their CPU per event differs by their own work, not by how fast each ran.
import { closeAll, connectMany, encode, frameKind, K, parseOk, sendText } from '../lib/client.mjs';
import { Histogram } from '../lib/stats.mjs';

/**
 * Publishes (a prefix of) `events` (JSON texts) to `url`. Resolves with `{ sent, answered, accepted,
 * rejected, reasons, seconds, rate, p50, p99, timedOut }`; `sent` says how many were used.
 */
export async function runIngest(url, events, { connections = 8, window = 64, durationMs = Infinity, timeoutMs = 120_000, rate = 0 } = {}) {
  const lanes = Array.from({ length: connections }, () => ({ frames: [], ids: [], next: 0, inflight: new Map() }));
  events.forEach((json, i) => {
    const lane = lanes[i % connections];
    lane.frames.push(encode(`["EVENT",${json}]`));
    lane.ids.push(json.slice(7, 71)); // corpus texts start with {"id":"<64 hex>"
  });
  const hist = new Histogram();
  const reasons = new Map();
  let sent = 0;
  let answered = 0;
  let accepted = 0;
  let lastAnswer = 0;
  let sending = true;
  let finish;
  const done = new Promise((r) => (finish = r));

  const sockets = await connectMany(url, connections, (c) => (buf) => {
    if (frameKind(buf) !== K.OK) return;
    const now = performance.now();
    const lane = lanes[c];
    const ok = parseOk(buf);
    const t0 = lane.inflight.get(ok.id);
    if (t0 === undefined) return;
    lane.inflight.delete(ok.id);
    hist.record(now - t0);
    answered++;
    lastAnswer = now;
    if (ok.accepted) accepted++;
    else {
      const key = String(ok.reason ?? '').slice(0, 60);
      reasons.set(key, (reasons.get(key) ?? 0) + 1);
    }
    if (sending && now - start > durationMs) sending = false;
    if (!rate && sending && lane.next < lane.frames.length) sendNext(c);
    if (answered === sent && (!sending || answered === events.length)) finish();
  });

  function sendNext(c) {
    const lane = lanes[c];
    const i = lane.next++;
    sent++;
    lane.inflight.set(lane.ids[i], performance.now());
    sendText(sockets[c], lane.frames[i]);
  }

  const start = performance.now();
  let pacer;
  if (!rate) for (let c = 0; c < connections; c++) for (let k = 0; k < window && lanes[c].next < lanes[c].frames.length; k++) sendNext(c);
  else {
    // Paced: every 5 ms, send what the rate allows since the start, round-robin over lanes with room.
    let offered = 0;
    let turn = 0;
    pacer = setInterval(() => {
      const now = performance.now();
      if (sending && now - start > durationMs) sending = false;
      if (!sending) {
        if (answered === sent) finish();
        return;
      }
      const due = Math.floor(((now - start) / 1000) * rate);
      let blocked = 0;
      while (offered < due && blocked < connections) {
        const c = turn++ % connections;
        const lane = lanes[c];
        if (lane.inflight.size >= window || lane.next >= lane.frames.length) {
          blocked++;
          continue;
        }
        blocked = 0;
        sendNext(c);
        offered++;
      }
      if (offered < due) offered = due; // a relay that cannot keep up is not sent a burst later
      if (lanes.every((l) => l.next >= l.frames.length) && answered === sent) finish();
    }, 5);
  }
  let timer;
  const timedOut = await Promise.race([done.then(() => false), new Promise((r) => (timer = setTimeout(() => r(true), timeoutMs)))]);
  clearTimeout(timer);
  clearInterval(pacer);
  sending = false;
  await closeAll(sockets);
  const seconds = ((timedOut ? performance.now() : lastAnswer) - start) / 1000;
  return {
    sent,
    answered,
    accepted,
    rejected: answered - accepted,
    reasons: Object.fromEntries(reasons),
    seconds,
    rate: accepted / seconds,
    p50: hist.quantile(0.5),
    p99: hist.quantile(0.99),
    timedOut,
  };
}
