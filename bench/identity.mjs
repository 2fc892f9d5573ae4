#!/usr/bin/env node
// Key event log benchmark: the cost of verifying an agent's log (docs/identity.md), per key event, with
// ids and signatures checked (a client reading a log from any relay) and trusted (the relay's policy,
// after its verifier), and the chain-rule check of one rotation (what the relay's policy adds per
// rotation: one Schnorr verification of prior-sig). Pure JavaScript (noble), single thread; each figure
// is the median of --runs runs.
//
//   npm run build && node bench/identity.mjs [--runs 5] [--events 64]
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { finalizeEvent, generateSecretKey, getPublicKey } from 'nostr-tools/pure';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const file = join(root, 'dist', 'shared', 'identity-log.js');
if (!existsSync(file)) {
  console.error('dist/shared/identity-log.js missing: run `npm run build` first.');
  process.exit(1);
}
const { checkKeyEventStep, getKeyEvent, makeInception, makeRevocation, makeRotation, verifyKeyLog } = await import(file);

function option(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] !== undefined ? Number(process.argv[i + 1]) : dflt;
}
const runs = option('runs', 5);
const n = option('events', 64);

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

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
function measure(fn, reps) {
  const out = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    for (let k = 0; k < reps; k++) fn();
    out.push(((performance.now() - t0) * 1000) / reps);
  }
  return median(out);
}

const checked = measure(() => verifyKeyLog(aid, shuffled), 3) / n;
const trusted = measure(() => verifyKeyLog(aid, shuffled, { trustSignatures: true }), 3) / n;
const prev = getKeyEvent(events[0]);
const rotation = getKeyEvent(events[1]);
const step = measure(() => checkKeyEventStep(prev, rotation), 50);
const log = verifyKeyLog(aid, shuffled);
if (typeof log === 'string' || log.chain.length !== n) throw new Error('benchmark log did not verify');
console.log(`key event log, ${n} events (1 in 8 a revocation), median of ${runs} runs, pure JS (noble):`);
console.log(`  verifyKeyLog, ids and signatures checked   ${checked.toFixed(0)} µs per key event`);
console.log(`  verifyKeyLog, signatures trusted           ${trusted.toFixed(0)} µs per key event`);
console.log(`  checkKeyEventStep (one rotation)           ${step.toFixed(0)} µs`);
