// Fan-out: `subscribers` sockets hold one live subscription each — half broadcast ({"kinds":[1]}),
// half {"#p":[own key]} — and publishers send kind-1 events that each tag one of the #p subscribers,
// so every event is due to (broadcast half + 1) subscribers. At most `window` events are in flight: an
// event leaves the window when its OK and all its deliveries have arrived (or after `staleMs`, its
// missing deliveries counted). Figures: deliveries per second and delivery latency (EVENT sent by the
// publisher → EVENT read by a subscriber).
import { closeAll, connectMany, encode, eventIdOf, frameKind, K, parseOk, sendText, waitUntil } from '../lib/client.mjs';
import { Histogram } from '../lib/stats.mjs';

/**
 * Opens the subscriber sockets and waits for every EOSE. `targets` are the #p keys (one per #p
 * subscriber). Returns `{ sockets, broadcast, tagged, setHandler(fn), close() }`.
 */
export async function openSubscribers(url, targets, count, { timeoutMs = 30_000 } = {}) {
  const broadcast = Math.floor(count / 2);
  const tagged = count - broadcast;
  let eose = 0;
  let handler = () => {};
  const sockets = await connectMany(url, count, (i) => (buf) => {
    const kind = frameKind(buf);
    if (kind === K.EVENT) handler(buf, i);
    else if (kind === K.EOSE) eose++;
  });
  const reqBroadcast = encode('["REQ","f",{"kinds":[1],"limit":0}]');
  sockets.forEach((ws, i) =>
    sendText(ws, i < broadcast ? reqBroadcast : encode(`["REQ","f",{"#p":["${targets[(i - broadcast) % targets.length]}"],"limit":0}]`)),
  );
  if (!(await waitUntil(() => eose === count, timeoutMs, 20))) throw new Error(`fan-out: only ${eose} of ${count} subscriptions answered EOSE`);
  const byTarget = new Map();
  for (let j = 0; j < tagged; j++) byTarget.set(targets[j % targets.length], broadcast + j);
  return {
    sockets,
    broadcast,
    tagged,
    /** Index of the #p subscriber whose key is `target`. */
    subscriberOf: (target) => byTarget.get(target),
    setHandler: (fn) => (handler = fn),
    close: () => closeAll(sockets),
  };
}

/**
 * Publishes `events` (JSON texts, each tagging one #p subscriber) through `publishers` sockets.
 * Only deliveries the subscriber's filter matches count; others are tallied as `unmatched`. Resolves
 * with `{ published, deliveries, expected, missing, unmatched, rejected, seconds, rate, p50, p99, timedOut }`.
 */
export async function runFanoutRound(url, subs, events, { publishers = 2, window = 8, durationMs = 3000, staleMs = 5000, timeoutMs = 60_000 } = {}) {
  const perEvent = subs.broadcast + 1;
  const frames = events.map((json) => encode(`["EVENT",${json}]`));
  const ids = events.map((json) => json.slice(7, 71));
  const dueTagged = events.map((json) => subs.subscriberOf(JSON.parse(json).tags.find((t) => t[0] === 'p')[1]));
  const hist = new Histogram();
  const open = new Map();
  let next = 0;
  let published = 0;
  let deliveries = 0;
  let missing = 0;
  let unmatched = 0;
  let rejected = 0;
  let lastDelivery = 0;
  let finish;
  const done = new Promise((r) => (finish = r));

  const complete = (id, now) => {
    open.delete(id);
    if (next < frames.length && now - start < durationMs) publish();
    else if (open.size === 0) finish();
  };

  subs.setHandler((buf, sub) => {
    const rec = open.get(eventIdOf(buf));
    if (!rec) return;
    if (sub >= subs.broadcast && sub !== rec.due) {
      unmatched++; // delivered to a #p subscription the event does not match
      return;
    }
    const now = performance.now();
    hist.record(now - rec.t0);
    deliveries++;
    lastDelivery = now;
    if (--rec.remaining <= 0 && rec.ok) complete(rec.id, now);
  });

  const pubs = await connectMany(url, publishers, () => (buf) => {
    if (frameKind(buf) !== K.OK) return;
    const ok = parseOk(buf);
    const rec = open.get(ok.id);
    if (!rec) return;
    rec.ok = true;
    if (!ok.accepted) {
      rejected++;
      rec.remaining = 0;
    }
    if (rec.remaining <= 0) complete(rec.id, performance.now());
  });

  function publish() {
    const i = next++;
    published++;
    open.set(ids[i], { id: ids[i], due: dueTagged[i], t0: performance.now(), remaining: perEvent, ok: false });
    sendText(pubs[i % publishers], frames[i]);
  }

  const watchdog = setInterval(() => {
    const now = performance.now();
    for (const rec of open.values()) {
      if (now - rec.t0 > staleMs) {
        missing += rec.remaining;
        complete(rec.id, now);
      }
    }
  }, 200);
  const start = performance.now();
  for (let k = 0; k < window && next < frames.length; k++) publish();
  let timer;
  const timedOut = await Promise.race([done.then(() => false), new Promise((r) => (timer = setTimeout(() => r(true), timeoutMs)))]);
  clearTimeout(timer);
  clearInterval(watchdog);
  subs.setHandler(() => {});
  await closeAll(pubs);
  const seconds = ((timedOut || lastDelivery === 0 ? performance.now() : lastDelivery) - start) / 1000;
  return {
    published,
    deliveries,
    expected: (published - rejected) * perEvent,
    missing,
    unmatched,
    rejected,
    seconds,
    rate: deliveries / seconds,
    p50: hist.quantile(0.5),
    p99: hist.quantile(0.99),
    timedOut,
  };
}
