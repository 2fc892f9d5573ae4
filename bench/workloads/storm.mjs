// Reconnect storm: `agents` sleeping agents, each with `perAgent` messages waiting, wake at once and
// catch up with at most `sockets` connections open at a time. Each agent: connect → (AUTH, when its
// mail is of a private kind) → REQ from its cursor → stored EVENTs → EOSE → close; the next agent
// takes the socket slot once the close completes. Figures: agents/s and events/s (first connect →
// last EOSE), connect → EOSE p50/p99, and correctness: every agent must get exactly its own mail
// (agents with missing, extra or duplicate events are counted).
//
// Forms: `since` (standard NIP-01 `{"kinds":[1],"#p":[agent],"since":cursor}`), `seq` (Roost's
// sequence extension, `seq_after`) and `private` (kind 1059 gift wraps, readable only after NIP-42
// AUTH as the recipient; `seq_after`). The cursor is the agent's last read position: just before
// its pending mail (`since` = one second before the oldest, `seq_after` = 0 on a relay holding
// only storm mail).
import { getEventHash } from 'nostr-tools/pure';
import * as ecc from 'tiny-secp256k1';
import WebSocket from 'ws';
import { eventIdOf, frameKind, K } from '../lib/client.mjs';
import { loadOrGenerate, makeIdentity, makeRandom, signToJson } from '../lib/corpus.mjs';
import { Histogram } from '../lib/stats.mjs';

const SOCKET_OPTIONS = { perMessageDeflate: false, skipUTF8Validation: true, maxPayload: 64 * 1024 * 1024 };
const GIFT_WRAP = 1059;
const NO_AUX = new Uint8Array(32);

/** Storm agents (secret keys: the private form signs AUTH) and the sender of their mail. */
export function describeStormCorpus(size) {
  const agents = Array.from({ length: size.stormAgents }, (_, i) => makeIdentity(`storm-agent-${i}`));
  const senders = Array.from({ length: 8 }, (_, i) => makeIdentity(`storm-sender-${i}`));
  return { size, agents, senders };
}

function generate(c, kind, now) {
  const { size, agents, senders } = c;
  const rnd = makeRandom(kind === GIFT_WRAP ? 6 : 5);
  const out = [];
  // Round-robin over agents so every agent's mail is spread over the whole load (as it arrives).
  for (let m = 0; m < size.stormPerAgent; m++) {
    for (let a = 0; a < agents.length; a++) {
      // Gift wraps are signed by a one-off key (NIP-59); the content stands in for the NIP-44 payload.
      const who = kind === GIFT_WRAP ? makeIdentity(`storm-wrap-${a}-${m}`) : senders[(a + m) % senders.length];
      const content = kind === GIFT_WRAP ? Buffer.from(Array.from({ length: 96 }, () => Math.floor(rnd() * 256))).toString('base64') : `storm ${a}/${m}`;
      out.push(signToJson({ kind, created_at: now - 3600 + m, tags: [['p', agents[a].pubkey]], content }, who));
    }
  }
  return out;
}

/**
 * The storm's mail: `{ public, both, agents, since }`: `public` holds the kind-1 mail (what the peer
 * is loaded with), `both` the kind-1 and kind-1059 mail (Roost); each is `{ events, file, key }` for
 * startSeeded. `since` is the agents' cursor for the standard form.
 */
export function loadStormCorpus(size, log = () => {}) {
  const c = describeStormCorpus(size);
  const spec = { agents: size.stormAgents, perAgent: size.stormPerAgent };
  const pub = loadOrGenerate('storm-public', spec, (now) => generate(c, 1, now), log);
  const wraps = loadOrGenerate('storm-private', spec, (now) => generate(c, GIFT_WRAP, now), log);
  const both = loadOrGenerate('storm-both', { ...spec, pub: pub.key, wraps: wraps.key }, () => [...pub.events, ...wraps.events], log);
  // Which agent each event belongs to, by id (the p tag is the agent's pubkey).
  const owner = new Map();
  const indexOf = new Map(c.agents.map((a, i) => [a.pubkey, i]));
  let oldest = Infinity;
  for (const json of both.events) {
    const ev = JSON.parse(json);
    owner.set(ev.id, indexOf.get(ev.tags[0][1]));
    if (ev.created_at < oldest) oldest = ev.created_at;
  }
  return { ...c, public: pub, both, owner, since: oldest - 1 };
}

function authFrame(agent, challenge, relayUrl) {
  const ev = {
    pubkey: agent.pubkey,
    created_at: Math.floor(Date.now() / 1000),
    kind: 22242,
    tags: [
      ['relay', relayUrl],
      ['challenge', challenge],
    ],
    content: '',
  };
  const id = getEventHash(ev);
  const sig = Buffer.from(ecc.signSchnorr(Buffer.from(id, 'hex'), agent.sk, NO_AUX)).toString('hex');
  return JSON.stringify(['AUTH', { id, ...ev, sig }]);
}

const CHALLENGE_AT = '["AUTH","'.length;

/**
 * Runs one storm of `form` (`since` | `seq` | `private`) against `url`. Resolves with `{ agents, ok,
 * missing, extra, duplicate, failed, events, seconds, rate, eventsRate, p50, p99, errors }`.
 */
export async function runStorm(url, corpus, form, { sockets = 500, timeoutMs = 180_000, agentTimeoutMs = 30_000 } = {}) {
  const { agents, owner, size } = corpus;
  const kind = form === 'private' ? GIFT_WRAP : 1;
  const cursor = form === 'since' ? `"since":${corpus.since}` : '"seq_after":0';
  const hist = new Histogram();
  const seen = new Set();
  const counts = { ok: 0, missing: 0, extra: 0, duplicate: 0, failed: 0, events: 0 };
  const errors = new Map();
  let next = 0;
  let lastEose = 0;

  function runAgent(i) {
    return new Promise((resolve) => {
      const agent = agents[i];
      const req = `["REQ","m",{"kinds":[${kind}],"#p":["${agent.pubkey}"],${cursor}}]`;
      let got = 0;
      let extra = 0;
      let dup = 0;
      let challenge = null;
      let authSent = false;
      let reqSent = false;
      let settled = false;
      const t0 = performance.now();
      const ws = new WebSocket(url, SOCKET_OPTIONS);
      const finish = (why) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (why) {
          counts.failed++;
          errors.set(why, (errors.get(why) ?? 0) + 1);
        }
        if (ws.readyState === WebSocket.CLOSED) resolve();
        else {
          ws.once('close', resolve);
          if (why) ws.terminate();
          else ws.close();
        }
      };
      const timer = setTimeout(() => finish('timed out'), agentTimeoutMs);
      const sendReq = () => {
        reqSent = true;
        ws.send(req);
      };
      const auth = () => {
        authSent = true;
        ws.send(authFrame(agent, challenge, url));
      };
      ws.on('error', (err) => finish(`socket error: ${err.code ?? err.message}`));
      ws.on('close', () => finish('closed by the relay'));
      ws.on('open', () => {
        if (kind !== GIFT_WRAP) sendReq();
        else if (challenge !== null) auth();
        // Otherwise wait for the challenge (sent at connect, or on demand after an auth-required CLOSED).
        else setImmediate(() => challenge === null && !reqSent && sendReq());
      });
      ws.on('message', (buf) => {
        const k = frameKind(buf);
        if (k === K.EVENT) {
          const id = eventIdOf(buf);
          if (owner.get(id) !== i) extra++;
          else if (seen.has(id)) dup++;
          else {
            seen.add(id);
            got++;
          }
          return;
        }
        if (k === K.EOSE) {
          const now = performance.now();
          hist.record(now - t0);
          lastEose = now;
          counts.events += got;
          if (got < size.stormPerAgent) counts.missing++;
          if (extra) counts.extra++;
          if (dup) counts.duplicate++;
          if (got === size.stormPerAgent && !extra && !dup) counts.ok++;
          finish();
          return;
        }
        if (k === K.AUTH) {
          challenge = JSON.parse(buf.toString('utf8'))[1] ?? buf.latin1Slice(CHALLENGE_AT, buf.length - 2);
          if (kind === GIFT_WRAP && !authSent) auth();
          return;
        }
        if (k === K.OK && kind === GIFT_WRAP) {
          if (buf.includes('true')) sendReq();
          else finish(`AUTH refused: ${buf.toString('utf8').slice(0, 120)}`);
          return;
        }
        if (k === K.CLOSED) {
          const text = buf.toString('utf8');
          if (kind === GIFT_WRAP && text.includes('auth-required')) {
            // Asked before authenticating: authenticate (now, or when the challenge comes); the OK sends the REQ again.
            reqSent = false;
            if (!authSent && challenge !== null) auth();
            return;
          }
          finish(`CLOSED: ${text.slice(0, 120)}`);
        }
      });
    });
  }

  const start = performance.now();
  const worker = async () => {
    while (next < agents.length && performance.now() - start < timeoutMs) await runAgent(next++);
  };
  await Promise.all(Array.from({ length: Math.min(sockets, agents.length) }, worker));
  const done = next;
  const seconds = ((lastEose || performance.now()) - start) / 1000;
  return {
    agents: done,
    ...counts,
    notRun: agents.length - done,
    seconds,
    rate: counts.ok / seconds,
    eventsRate: counts.events / seconds,
    p50: hist.quantile(0.5),
    p99: hist.quantile(0.99),
    errors: Object.fromEntries(errors),
  };
}

/** Storm forms in the order they run; `private` and `seq` only where the relay serves them. */
const FORMS = [
  { form: 'since', title: 'since' },
  { form: 'seq', title: 'seq_after' },
  { form: 'private', title: 'NIP-42 + kind 1059, seq_after' },
];

/**
 * The storm workload for `npm run bench`: each relay pre-loaded with the storm mail (the peer with
 * the public part), one cold storm right after start, then `stormRuns` rounds of every form it
 * serves, the relays alternating ABBA. Results land in `targets[i].result.storm`.
 */
export async function benchStorm(targets, data, size, opts, notes, h) {
  const { startSeeded } = await import('../lib/seed.mjs');
  const { probeSeqExtension } = await import('./backfill.mjs');
  const { median, sleep } = await import('../lib/stats.mjs');
  const corpus = data.storm;
  const relays = [];
  try {
    for (const t of targets) {
      const roost = /^roost(:|$)/.test(t.spec);
      h.log(`[${t.label}] storm: ${size.stormAgents} agents × ${size.stormPerAgent} messages, ≤ ${size.stormSockets} sockets`);
      const relay = await startSeeded(t.spec, roost ? corpus.both : corpus.public, { log: h.log, snapshots: opts.snapshots });
      relays.push({ relay, roost, forms: new Map() });
    }
    h.setLivePids(relays.map((r) => r.relay.pid).filter((pid) => pid !== null));
    const one = async (r, form, label) => {
      const run = await h.withCpu(
        r.relay,
        () => runStorm(r.relay.url, corpus, form, { sockets: size.stormSockets }),
        (x) => x.agents,
      );
      h.log(
        `  [${r.relay.label}] storm ${form} ${label}: ${run.rate.toFixed(0)} agents/s, ${run.eventsRate.toFixed(0)} events/s, connect→EOSE p50 ${run.p50.toFixed(1)} ms, p99 ${run.p99.toFixed(1)} ms, ${run.ok}/${size.stormAgents} agents exact, relay CPU ${run.cpuUs.toFixed(0)} µs/agent${h.fmtLoad(run)}`,
      );
      h.noteLoad('storm', run);
      const wrong = run.missing + run.extra + run.duplicate + run.failed + run.notRun;
      if (wrong)
        notes.push(
          `${r.relay.label} storm ${form} ${label}: ${run.missing} agents missing mail, ${run.extra} with extra, ${run.duplicate} with duplicates, ${run.failed} failed ${JSON.stringify(run.errors)}, ${run.notRun} not run (storm stopped after 180 s)`,
        );
      return run;
    };
    // The first storm after start (cold: statements unprepared, code not yet optimised).
    for (const r of relays) r.cold = await one(r, 'since', 'cold');
    for (const r of relays) {
      r.serves = new Set(['since']);
      if (await probeSeqExtension(r.relay.url, corpus.agents[0].pubkey)) r.serves.add('seq');
      if (r.roost) r.serves.add('private');
    }
    for (let round = 0; round < size.stormRuns; round++) {
      for (const { form } of FORMS) {
        for (const r of round % 2 ? [...relays].reverse() : relays) {
          if (!r.serves.has(form)) continue;
          await sleep(500);
          if (!r.forms.has(form)) r.forms.set(form, []);
          r.forms.get(form).push(await one(r, form, `${round + 1}/${size.stormRuns}`));
        }
      }
    }
    const keys = ['rate', 'eventsRate', 'p50', 'p99', 'cpuUs'];
    relays.forEach((r, i) => {
      const out = { cold: Object.fromEntries(keys.map((k) => [k, r.cold[k]])) };
      for (const [form, runs] of r.forms) {
        out[form] = { runs, wrong: runs.reduce((n, x) => n + x.missing + x.extra + x.duplicate + x.failed, 0) };
        for (const k of keys) out[form][k] = median(runs.map((x) => x[k]));
      }
      targets[i].result.storm = out;
    });
  } finally {
    for (const r of relays) await r.relay.stop();
  }
}

/** The storm's rows of the report table (`add(figure, better, fmt, get)` as in run.mjs). */
export function stormRows(a, b, add, { fmtRate, fmtMs }) {
  if (!a.storm && !b.storm) return;
  for (const { form, title } of FORMS) {
    if (!a.storm?.[form] && !b.storm?.[form]) continue;
    add(`storm (${title}) agents/s`, 'higher', fmtRate, (r) => r.storm?.[form]?.rate);
    add(`storm (${title}) events/s`, 'higher', fmtRate, (r) => r.storm?.[form]?.eventsRate);
    add(`storm (${title}) connect→EOSE p50 ms`, 'lower', fmtMs, (r) => r.storm?.[form]?.p50);
    add(`storm (${title}) connect→EOSE p99 ms`, 'lower', fmtMs, (r) => r.storm?.[form]?.p99);
    add(`storm (${title}) relay CPU µs/agent`, 'lower', fmtRate, (r) => r.storm?.[form]?.cpuUs);
    add(
      `storm (${title}) agents with wrong mail`,
      'lower',
      (v) => (Number.isFinite(v) ? String(v) : 'n/a'),
      (r) => r.storm?.[form]?.wrong,
    );
  }
  add('storm cold (first after start, since) agents/s', 'higher', fmtRate, (r) => r.storm?.cold?.rate);
  add('storm cold relay CPU µs/agent', 'lower', fmtRate, (r) => r.storm?.cold?.cpuUs);
}
