// Backfill: one agent reads its whole mailbox (every stored event with `#p` = agent) on one socket.
// With Roost's sequence extension: REQ {"#p":[agent],"seq_after":0} streams matches in ascending seq
// order and ends with ["EOSE", sub, {"cursor": n, "more": bool}] (a `more: true` page is followed
// by another REQ from the cursor). Without it, the closest standard equivalent: newest-first pages
// of `limit` events, each page's `until` just below the oldest created_at seen (the corpus gives every
// mailbox event its own created_at, so paging is exact).
import { closeAll, connect, createdAtOf, encode, frameKind, K, sendText } from '../lib/client.mjs';

function session(url) {
  const state = { onEvent: null, onEnd: null };
  const ready = connect(url, (buf) => {
    const kind = frameKind(buf);
    if (kind === K.EVENT) state.onEvent?.(buf);
    else if (kind === K.EOSE || kind === K.CLOSED || kind === K.NOTICE) state.onEnd?.(kind, buf);
  });
  return { state, ready };
}

/** True when the relay answers a `seq_after` REQ with a cursor-bearing EOSE (the sequence extension). */
export async function probeSeqExtension(url, agent) {
  const s = session(url);
  const ws = await s.ready;
  try {
    const answer = await new Promise((resolve) => {
      const timer = setTimeout(() => resolve(null), 5000);
      s.state.onEnd = (kind, buf) => {
        clearTimeout(timer);
        resolve(kind === K.EOSE ? JSON.parse(buf.toString('utf8')) : null);
      };
      sendText(ws, encode(`["REQ","probe",{"#p":["${agent}"],"seq_after":0,"limit":1}]`));
    });
    return Boolean(answer?.[2] && typeof answer[2].cursor === 'number');
  } finally {
    await closeAll([ws]);
  }
}

/**
 * Reads the mailbox with the sequence extension. Resolves with
 * `{ events, pages, seconds, rate, complete, timedOut, error? }`.
 */
export async function runBackfillSeq(url, agent, { timeoutMs = 120_000, maxPages = 10_000 } = {}) {
  const s = session(url);
  const ws = await s.ready;
  let events = 0;
  let pages = 0;
  const start = performance.now();
  const result = await new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ timedOut: true, complete: false }), timeoutMs);
    s.state.onEvent = () => events++;
    s.state.onEnd = (kind, buf) => {
      if (kind !== K.EOSE) {
        clearTimeout(timer);
        return resolve({ complete: false, error: buf.toString('utf8').slice(0, 200) });
      }
      const info = JSON.parse(buf.toString('utf8'))[2] ?? {};
      sendText(ws, encode(`["CLOSE","bf${pages}"]`));
      pages++;
      if (info.more === true && typeof info.cursor === 'number' && pages < maxPages) {
        sendText(ws, encode(`["REQ","bf${pages}",{"#p":["${agent}"],"seq_after":${info.cursor}}]`));
      } else {
        clearTimeout(timer);
        resolve({ complete: info.more === false, timedOut: false });
      }
    };
    sendText(ws, encode(`["REQ","bf0",{"#p":["${agent}"],"seq_after":0}]`));
  });
  const seconds = (performance.now() - start) / 1000;
  await closeAll([ws]);
  return { events, pages, seconds, rate: events / seconds, ...result };
}

/**
 * Reads the mailbox with standard NIP-01 paging (`#p`, `limit`, `until`). Resolves with
 * `{ events, pages, seconds, rate, complete, timedOut, error? }`.
 */
export async function runBackfillPaged(url, agent, { pageSize = 500, timeoutMs = 120_000, maxPages = 10_000 } = {}) {
  const s = session(url);
  const ws = await s.ready;
  let events = 0;
  let pages = 0;
  let pageEvents = 0;
  let oldest = Infinity;
  const start = performance.now();
  const result = await new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ timedOut: true, complete: false }), timeoutMs);
    s.state.onEvent = (buf) => {
      events++;
      pageEvents++;
      const t = createdAtOf(buf);
      if (t < oldest) oldest = t;
    };
    s.state.onEnd = (kind, buf) => {
      if (kind !== K.EOSE) {
        clearTimeout(timer);
        return resolve({ complete: false, error: buf.toString('utf8').slice(0, 200) });
      }
      sendText(ws, encode(`["CLOSE","pg${pages}"]`));
      pages++;
      if (pageEvents === 0 || pages >= maxPages) {
        clearTimeout(timer);
        return resolve({ complete: pageEvents === 0, timedOut: false });
      }
      pageEvents = 0;
      sendText(ws, encode(`["REQ","pg${pages}",{"#p":["${agent}"],"until":${oldest - 1},"limit":${pageSize}}]`));
    };
    sendText(ws, encode(`["REQ","pg0",{"#p":["${agent}"],"limit":${pageSize}}]`));
  });
  const seconds = (performance.now() - start) / 1000;
  await closeAll([ws]);
  return { events, pages, seconds, rate: events / seconds, ...result };
}
