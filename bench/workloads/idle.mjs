// Idle connections: open `count` sockets, each with one live subscription ({"#p":[own key]}) and
// nothing else, and read the relay process's resident memory (VmRSS) before and after. A short
// warm-up (connect, subscribe, disconnect) first makes the relay load its per-connection code paths.
import { deriveHex } from '../lib/corpus.mjs';
import { closeAll, connectMany, encode, frameKind, K, sendText, waitUntil } from '../lib/client.mjs';
import { readRssKiB } from '../lib/relay-process.mjs';
import { sleep } from '../lib/stats.mjs';

async function subscribeMany(url, count, label) {
  let eose = 0;
  const sockets = await connectMany(url, count, () => (buf) => {
    if (frameKind(buf) === K.EOSE) eose++;
  });
  sockets.forEach((ws, i) => sendText(ws, encode(`["REQ","idle",{"#p":["${deriveHex(`${label}-${i}`)}"],"limit":0}]`)));
  const all = await waitUntil(() => eose === count, 30_000, 20);
  return { sockets, eose, all };
}

/**
 * Measures memory per idle subscribed connection on a relay child process `pid`. Resolves with
 * `{ connections, subscribed, rssBeforeKiB, rssAfterKiB, perConnectionKiB }`.
 */
export async function runIdle(url, pid, { count = 2000, warmup = 20, settleMs = 2000 } = {}) {
  const warm = await subscribeMany(url, warmup, 'idle-warmup');
  await closeAll(warm.sockets);
  await sleep(settleMs / 2);
  const rssBeforeKiB = readRssKiB(pid);
  const held = await subscribeMany(url, count, 'idle');
  await sleep(settleMs);
  const rssAfterKiB = readRssKiB(pid);
  await closeAll(held.sockets, 5000);
  const perConnectionKiB = rssBeforeKiB === null || rssAfterKiB === null ? NaN : (rssAfterKiB - rssBeforeKiB) / count;
  return { connections: count, subscribed: held.eose, rssBeforeKiB, rssAfterKiB, perConnectionKiB };
}
