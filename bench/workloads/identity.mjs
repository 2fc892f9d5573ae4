// Identity workload (docs/identity.md, issue 23): what key event logs cost, client side, single thread.
// Verifying an agent's log per key event, with ids and signatures checked (a client reading a log from any
// relay) and trusted (the relay's policy, after its verifier), and the chain-rule check of one rotation
// (what the relay's policy adds per rotation: one Schnorr verification of prior-sig); what following logs
// costs a recipient per direct message from a rotated sender (opening it, and checking the sender's key
// window against a cached log; the first message of a sender also verifies its log); and discovery with
// minReputation over `cards` cards (task chains, reputation, card merge and the filter, over events already
// held). Each figure is the median of `runs` runs. Needs dist/ (npm run build). Used by `npm run bench`
// (workload `identity`) and `npm run bench:identity` (bench/identity.mjs).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { finalizeEvent, generateSecretKey, getPublicKey } from 'nostr-tools/pure';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Runs the identity figures; `events` key events in the log, `cards` cards for discovery, `runs` runs per figure. */
export async function runIdentity({ runs = 5, events: n = 64, cards = 10_000 } = {}) {
  const file = join(root, 'dist', 'shared', 'identity-log.js');
  if (!existsSync(file)) throw new Error('dist/shared/identity-log.js missing: run `npm run build` first.');
  const { checkKeyEventStep, getKeyEvent, makeInception, makeRevocation, makeRotation, verifyKeyLog } = await import(file);
  function measure(fn, reps) {
    const out = [];
    for (let r = 0; r < runs; r++) {
      const t0 = performance.now();
      for (let k = 0; k < reps; k++) fn();
      out.push(((performance.now() - t0) * 1000) / reps);
    }
    return median(out);
  }
  const keys = Array.from({ length: n + 2 }, () => generateSecretKey());
  const pk = (sk) => getPublicKey(sk);
  let t = 1_700_000_000;
  const events = [finalizeEvent(makeInception({ nextKey: pk(keys[1]) }, t), keys[0])];
  for (let i = 1; i < n; i++) {
    const head = getKeyEvent(events[i - 1]);
    const tpl =
      i % 8 === 0
        ? makeRevocation({ head, nextKey: pk(keys[i + 1]) }, ++t)
        : makeRotation({ head, currentSecretKey: keys[i - 1], newKey: pk(keys[i]), nextKey: pk(keys[i + 1]) }, ++t);
    events.push(finalizeEvent(tpl, keys[i]));
  }
  const aid = events[0].id;
  const shuffled = [...events].reverse();
  const checked = measure(() => verifyKeyLog(aid, shuffled), 3) / n;
  const trusted = measure(() => verifyKeyLog(aid, shuffled, { trustSignatures: true }), 3) / n;
  const step = measure(() => checkKeyEventStep(getKeyEvent(events[0]), getKeyEvent(events[1])), 50);
  const log = verifyKeyLog(aid, shuffled);
  if (typeof log === 'string' || log.chain.length !== n) throw new Error('benchmark log did not verify');

  // --- a direct message from a rotated sender: what the recipient pays on top of opening it ---
  const node = await import(join(root, 'dist', 'client', 'node', 'index.js'));
  const { KeyLogs } = await import(join(root, 'dist', 'client', 'key-logs.js'));
  const { unwrapDirectMessage, wrapDirectMessage } = await import(join(root, 'dist', 'client', 'dm.js'));
  const me = node.Identity.generate();
  // The sender's log: inception then one rotation; it writes with its old key inside the grace period.
  const s0 = node.Identity.generate();
  const s1 = node.Identity.generate();
  const s2 = node.Identity.generate();
  const inc = s0.sign(makeInception({ nextKey: s1.pubkey }, 1_700_000_000));
  const rot = s1.sign(makeRotation({ head: getKeyEvent(inc), currentSecretKey: s0.exportSecretKey(), newKey: s1.pubkey, nextKey: s2.pubkey }, 1_700_000_100));
  const offline = () =>
    new KeyLogs({
      fetch: async () => [],
      subscribe: () => ({ close() {} }),
      connected: () => false,
      now: () => Date.now(),
      log: { debug() {}, info() {}, warn() {}, error() {} },
    });
  const firstMessage = measure(() => offline().add(inc.id, [inc, rot]), 20);
  const cache = offline();
  cache.add(inc.id, [inc, rot]);
  const wraps = Array.from({ length: 200 }, (_, i) => wrapDirectMessage(s0, me.pubkey, `m${i}`, { createdAt: 1_700_000_150 }).wrap);
  let w = 0;
  const open = measure(() => unwrapDirectMessage(me, wraps[w++ % wraps.length]), 200);
  let refused = 0;
  const window = measure(() => {
    void cache.checkSender(s0.pubkey, 1_700_000_150).then((c) => {
      if (c.refused) refused++;
    });
  }, 10_000);
  await new Promise((r) => setTimeout(r, 10));
  if (refused > 0) throw new Error('a message in the grace period was refused');

  // --- discovery with minReputation over `cards` cards ---
  const { combineDiscovery } = await import(join(root, 'dist', 'client', 'presence.js'));
  const { makeAgentCard } = await import(join(root, 'dist', 'shared', 'agent-card.js'));
  const { computeReputation } = await import(join(root, 'dist', 'shared', 'reputation.js'));
  const { getTaskChain, getTaskRequest, makeTaskOffer, makeTaskRequest, makeTaskStep } = await import(join(root, 'dist', 'shared', 'tasks.js'));
  const { makeRandom } = await import(join(root, 'bench', 'lib', 'random.mjs'));
  const rnd = makeRandom(23);
  const fake = (i, kind) => {
    const hex = (v) => v.toString(16).padStart(64, '0');
    return { id: hex(kind * 1_000_000 + i), pubkey: hex(i + 1), sig: '0'.repeat(128) };
  };
  // Signatures are what a client checks once on arrival (measured above and in bench/verify.mjs); the
  // figure here is the scoring and filtering the client does over events it already holds.
  const cardEvents = [];
  const history = [];
  const attest = [];
  for (let i = 0; i < cards; i++) {
    const a = fake(i, 1);
    cardEvents.push({ ...makeAgentCard({ name: `a${i}`, description: '', capabilities: ['bench'], version: '1', relays: [] }, 1_700_000_000), ...a });
    for (let k = 0; k < 3; k++) {
      const requester = fake((i + 1 + k) % cards, 9);
      const req = { ...makeTaskRequest({ capabilities: ['bench'], input: '' }, 1_700_000_000), ...fake(i * 3 + k, 2), pubkey: requester.pubkey };
      const offer = { ...makeTaskOffer({ id: req.id, requester: req.pubkey }, {}, 1_700_000_001), ...fake(i * 3 + k, 3), pubkey: a.pubkey };
      const accept = {
        ...makeTaskStep({ root: req.id, prev: req.id, state: 'working', worker: a.pubkey, offer: offer.id, to: a.pubkey }, 1_700_000_002),
        ...fake(i * 3 + k, 4),
        pubkey: req.pubkey,
      };
      const done = {
        ...makeTaskStep({ root: req.id, prev: accept.id, state: rnd() < 0.8 ? 'completed' : 'failed', worker: a.pubkey, to: req.pubkey }, 1_700_000_003),
        ...fake(i * 3 + k, 5),
        pubkey: a.pubkey,
      };
      history.push([req, offer, accept, done]);
    }
    for (let k = 0; k < 2; k++) {
      const subject = fake(Math.floor(rnd() * cards), 1).pubkey;
      attest.push({
        kind: 4349,
        created_at: 1_700_000_010,
        content: '',
        tags: [
          ['p', subject],
          ['rating', '1'],
        ],
        ...fake(i * 2 + k, 6),
      });
    }
  }
  let kept = 0;
  const discover = measure(() => {
    const tasks = history.map(([req, ...rest]) => getTaskChain(getTaskRequest(req), rest));
    const reps = computeReputation({ tasks, attestations: attest });
    const found = combineDiscovery(cardEvents, [], [], ['bench'], 1_700_000_100);
    kept = found.filter((f) => (reps.get(f.pubkey)?.score ?? 0) >= 0.3).length;
  }, 1);
  if (kept === 0) throw new Error('discovery kept no card');
  return {
    runs,
    events: n,
    cards,
    chainCheckedUsPerEvent: checked,
    chainTrustedUsPerEvent: trusted,
    rotationStepUs: step,
    dmOpenUs: open,
    dmKeyWindowUs: window,
    firstMessageLogUs: firstMessage,
    discoverMs: discover / 1000,
    discoverKept: kept,
  };
}

/** The figures of {@link runIdentity} as text lines. */
export function identityLines(r) {
  return [
    `key event log, ${r.events} events (1 in 8 a revocation), median of ${r.runs} runs, pure JS (noble):`,
    `  verifyKeyLog, ids and signatures checked   ${r.chainCheckedUsPerEvent.toFixed(0)} µs per key event`,
    `  verifyKeyLog, signatures trusted           ${r.chainTrustedUsPerEvent.toFixed(0)} µs per key event`,
    `  checkKeyEventStep (one rotation)           ${r.rotationStepUs.toFixed(0)} µs`,
    'direct message from a rotated sender (WebAssembly crypto, as in Node agents):',
    `  open the gift wrap                         ${r.dmOpenUs.toFixed(0)} µs per DM`,
    `  check the sender's key window              ${r.dmKeyWindowUs.toFixed(2)} µs per DM (log cached)`,
    `  first message: verify the sender's log     ${r.firstMessageLogUs.toFixed(0)} µs once per sender (2 events, signatures checked; plus one relay round trip)`,
    `discovery with minReputation over ${r.cards} cards (${3 * r.cards} task chains, ${2 * r.cards} attestations, held in memory):`,
    `  chains + reputation + card merge + filter  ${r.discoverMs.toFixed(0)} ms (${r.discoverKept} cards kept)`,
  ];
}
