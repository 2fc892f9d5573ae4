// Query: `connections` clients, each with one REQ in flight: REQ → stored EVENTs → EOSE, then CLOSE
// and the next REQ. Figures: completed queries per second and REQ → EOSE latency. Filters come from
// a pre-built, shuffled list in which no filter text repeats within a run, so no relay can answer from
// a result cache what the others must read from their store (varying `limit` above the number of
// matches keeps the answers identical while making each filter distinct).
import { closeAll, connectMany, encode, frameKind, K, sendText } from '../lib/client.mjs';
import { ADDR_KIND, shuffle } from '../lib/corpus.mjs';
import { Histogram } from '../lib/stats.mjs';

/** Query shapes: name, how many events each answer should hold, and a filter maker. */
export const QUERY_SHAPES = {
  author: {
    title: 'by author',
    expected: (c) => c.size.perAuthor + c.size.addrPerAuthor,
    filters: (c) => c.authors.map((a) => (limit) => `{"authors":["${a.pubkey}"],"limit":${limit}}`),
    minLimit: (c) => c.size.perAuthor + c.size.addrPerAuthor,
  },
  tag: {
    title: 'by #p',
    expected: (c) => c.size.perAuthor,
    filters: (c) => c.targets.map((t) => (limit) => `{"#p":["${t}"],"limit":${limit}}`),
    minLimit: (c) => c.size.perAuthor,
  },
  addressable: {
    title: `by kind ${ADDR_KIND} + author + d`,
    expected: () => 1,
    filters: (c) =>
      c.authors.flatMap((a) =>
        Array.from(
          { length: c.size.addrPerAuthor },
          (_, j) => (limit) => `{"kinds":[${ADDR_KIND}],"authors":["${a.pubkey}"],"#d":["slot-${j}"],"limit":${limit}}`,
        ),
      ),
    minLimit: () => 1,
  },
};

/** `count` REQ filter texts of one shape, all distinct, in a seeded order. */
export function buildFilters(shape, corpus, count, seed) {
  const makers = shape.filters(corpus);
  const lo = shape.minLimit(corpus);
  const out = [];
  for (let i = 0; out.length < count; i++) {
    const limit = lo + Math.floor(i / makers.length);
    out.push(makers[i % makers.length](limit));
  }
  return shuffle(out, seed);
}

/**
 * Runs queries from `filters` against `url` for `durationMs` (or until the list is used up).
 * Resolves with `{ queries, seconds, rate, p50, p99, eventsPerQuery, closed, timedOut }`.
 */
export async function runQuery(url, filters, { connections = 8, durationMs = 3000, timeoutMs = 30_000 } = {}) {
  const hist = new Histogram();
  const lanes = Array.from({ length: connections }, () => ({ t0: 0, sub: '', events: 0, seq: 0 }));
  let next = 0;
  let queries = 0;
  let events = 0;
  let closed = 0;
  let active = connections;
  let lastAnswer = 0;
  let finish;
  const done = new Promise((r) => (finish = r));
  const close = lanes.map(() => null);

  const sockets = await connectMany(url, connections, (c) => (buf) => {
    const kind = frameKind(buf);
    const lane = lanes[c];
    if (kind === K.EVENT) {
      if (buf.latin1Slice(10, 10 + lane.sub.length + 1) === lane.sub + '"') lane.events++;
      return;
    }
    if (kind !== K.EOSE && kind !== K.CLOSED) return;
    if (buf.latin1Slice(9, 9 + lane.sub.length + 1) !== lane.sub + '"' && buf.latin1Slice(11, 11 + lane.sub.length + 1) !== lane.sub + '"') return;
    const now = performance.now();
    if (kind === K.CLOSED) closed++;
    else {
      hist.record(now - lane.t0);
      queries++;
      events += lane.events;
      sendText(sockets[c], close[c]);
    }
    lastAnswer = now;
    issue(c, now);
  });

  function issue(c, now) {
    if (next >= filters.length || now - start > durationMs) {
      if (--active === 0) finish();
      return;
    }
    const lane = lanes[c];
    lane.sub = `q${c}-${lane.seq++ % 10}`;
    lane.events = 0;
    close[c] = encode(`["CLOSE","${lane.sub}"]`);
    lane.t0 = performance.now();
    sendText(sockets[c], encode(`["REQ","${lane.sub}",${filters[next++]}]`));
  }

  const start = performance.now();
  for (let c = 0; c < connections; c++) issue(c, start);
  let timer;
  const timedOut = await Promise.race([done.then(() => false), new Promise((r) => (timer = setTimeout(() => r(true), timeoutMs)))]);
  clearTimeout(timer);
  await closeAll(sockets);
  const seconds = ((timedOut ? performance.now() : lastAnswer) - start) / 1000;
  return {
    queries,
    seconds,
    rate: queries / seconds,
    p50: hist.quantile(0.5),
    p99: hist.quantile(0.99),
    eventsPerQuery: queries ? events / queries : NaN,
    closed,
    timedOut,
  };
}
