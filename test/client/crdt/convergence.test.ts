import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { createCoverageCheck } from '../../../client/crdt/coverage.js';
import { createSharedDoc } from '../../../client/crdt/shared-doc.js';
import { isRangeCovered } from '../../../client/crdt/wire.js';
import { LossyNetwork, OWNER, RelayLog, fingerprint, makeReplica, makeRng, pick, pk, randomOp } from './sim.js';

const SEEDS = Array.from({ length: 40 }, (_, i) => 1000 + i);

describe('replicas converge under loss, duplication, reordering, partitions and offline edits', () => {
  it.each(SEEDS)('seed %i (peer-to-peer, healed by state-vector sync)', (seed) => {
    const rng = makeRng(seed);
    const n = 5 + pick(rng, 3);
    const net = new LossyNetwork(rng, { loss: 0.3, dup: 0.2, maxDelay: 6 });
    for (let i = 0; i < n; i++) net.join(makeReplica(i, n, { rng, clock: () => 1_700_000_000_000 + net.time * 1000 }));

    for (let phase = 0; phase < 6; phase++) {
      // each phase: a random partition into up to 3 groups and some replicas offline
      net.group.clear();
      net.offline.clear();
      for (let i = 0; i < n; i++) {
        net.group.set(i, pick(rng, 3));
        if (rng() < 0.25) net.offline.add(i);
      }
      for (let s = 0; s < 40; s++) {
        const busy = 1 + pick(rng, 3);
        for (let b = 0; b < busy; b++) randomOp(net.docs[pick(rng, n)]!, rng);
        net.step();
      }
    }
    net.heal();

    const prints = net.docs.map(fingerprint);
    for (const p of prints) expect(p).toBe(prints[0]);
    const svs = net.docs.map((d) => Buffer.from(d.stateVector()).toString('hex'));
    for (const s of svs) expect(s).toBe(svs[0]);
    for (const d of net.docs) expect(d.hasPending()).toBe(false);
    expect(net.published).toBeGreaterThan(100);
  });

  it.each(SEEDS.slice(0, 25))('seed %i (store-and-forward log; snapshot plus uncovered deltas equals full history)', (seed) => {
    const rng = makeRng(seed);
    const n = 5 + pick(rng, 3);
    let time = 0;
    const relay = new RelayLog(rng);
    for (let i = 0; i < n; i++) relay.join(makeReplica(i, n, { rng, clock: () => 1_700_000_000_000 + time * 1000 }));

    let mid: { update: Uint8Array; stateVector: Map<number, number> } | undefined;
    for (let s = 0; s < 300; s++) {
      time++;
      const who = pick(rng, n);
      if (rng() < 0.05) relay.setOffline(who, !relay.offline.has(who));
      randomOp(relay.docs[who]!, rng);
      relay.read(pick(rng, n), 1 + pick(rng, 20));
      if (s === 150) {
        const r = relay.docs.find((d, i) => !relay.offline.has(i) && !d.hasPending());
        mid = r?.snapshot();
      }
    }
    for (let i = 0; i < n; i++) relay.setOffline(i, false);
    for (let i = 0; i < n; i++) relay.read(i, relay.log.length);

    const prints = relay.docs.map(fingerprint);
    for (const p of prints) expect(p).toBe(prints[0]);
    for (const d of relay.docs) expect(d.hasPending()).toBe(false);

    // the full history replayed in order by a newcomer gives the same state
    const full = makeReplica(n, n + 1, { rng, clock: () => 0 });
    for (const e of relay.log) full.receive(e.update, { author: e.meta.author });
    expect(fingerprint(full)).toBe(prints[0]);

    // a final snapshot covers every delta, by the precise check and by the relay's clock-range check
    const final = relay.docs[0]!.snapshot();
    const covers = createCoverageCheck(final.update);
    for (const e of relay.log) {
      expect(isRangeCovered(e.meta.clock, final.stateVector)).toBe(true);
      expect(covers(e.update)).toBe(true);
    }

    // a mid-run snapshot plus only the deltas it does not cover rebuilds the same state, for both checks
    if (mid) {
      const midCovers = createCoverageCheck(mid.update);
      const coarse = relay.log.filter((e) => !isRangeCovered(e.meta.clock, mid!.stateVector));
      const precise = relay.log.filter((e) => !midCovers(e.update));
      expect(coarse.length).toBeLessThan(relay.log.length);
      for (const rest of [coarse, precise]) {
        const newcomer = createSharedDoc({ docId: 'doc', self: pk(99), membership: { owner: OWNER }, policies: [] });
        newcomer.receive(mid.update, { author: OWNER, kind: 'snapshot' });
        for (const e of rest) newcomer.receive(e.update, { author: e.meta.author });
        expect(newcomer.hasPending()).toBe(false);
        expect(fingerprint(newcomer)).toBe(prints[0]);
      }
    }
  });

  it('the clock-range check alone would be unsound without ticks: a delete-only Yjs update has no structs', () => {
    const d = new Y.Doc();
    d.getArray('a').insert(0, [1, 2]);
    let last: Uint8Array | undefined;
    d.on('update', (u: Uint8Array) => (last = u));
    d.getArray('a').delete(0, 1);
    expect(Y.parseUpdateMeta(last!).to.size).toBe(0);
  });
});
