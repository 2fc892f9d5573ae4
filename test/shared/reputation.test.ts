import { finalizeEvent, generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import { describe, expect, it } from 'vitest';
import type { NostrEvent } from '../../shared/event.js';
import { getKeyEvent, type KeyLog, makeInception, makeRevocation, makeRotation, verifyKeyLog } from '../../shared/identity-log.js';
import { computeReputation, getAttestation, makeAttestation } from '../../shared/reputation.js';
import { getTaskChain, getTaskRequest, makeTaskOffer, makeTaskRequest, makeTaskStep, type TaskChain } from '../../shared/tasks.js';

// The documented formula (docs/identity.md#reputation), table-driven over hand-made histories.
const key = () => {
  const sk = generateSecretKey();
  return { sk, pk: getPublicKey(sk) };
};
type K = ReturnType<typeof key>;
let t = 1_700_000_000;
const sign = (k: K, tpl: Parameters<typeof finalizeEvent>[0]) => finalizeEvent(tpl, k.sk) as NostrEvent;

function task(requester: K, worker: K, outcome: 'completed' | 'failed'): TaskChain {
  const req = sign(requester, makeTaskRequest({ capabilities: ['x'], input: '' }, ++t));
  const offer = sign(worker, makeTaskOffer({ id: req.id, requester: requester.pk }, {}, ++t));
  const accept = sign(requester, makeTaskStep({ root: req.id, prev: req.id, state: 'working', worker: worker.pk, offer: offer.id, to: worker.pk }, ++t));
  const done = sign(worker, makeTaskStep({ root: req.id, prev: accept.id, state: outcome, worker: worker.pk, to: requester.pk }, ++t));
  return getTaskChain(getTaskRequest(req)!, [offer, accept, done]);
}
const attest = (by: K, about: K, rating: number, at = ++t) => sign(by, makeAttestation({ subject: about.pk, rating }, at));

describe('computeReputation', () => {
  const r = key();
  const w = key();
  const a = key();
  it('task standing is C / (C + F + 5); attestations add at most 0.2, weighted by the attester’s task standing', () => {
    const tasks = [...Array.from({ length: 5 }, () => task(r, w, 'completed')), ...Array.from({ length: 5 }, () => task(r, a, 'completed'))];
    const rep = computeReputation({ tasks, attestations: [] });
    expect(rep.get(w.pk)).toEqual({ id: w.pk, score: 0.4, completed: 5, failed: 0, taskStanding: 0.5, support: 0 });
    // a (standing 0.5) rates w 1: support 0.5, bonus 0.2 × 0.5 / 2 = 0.05.
    const withA = computeReputation({ tasks, attestations: [attest(a, w, 1)] }).get(w.pk)!;
    expect(withA.support).toBe(0.5);
    expect(withA.score).toBeCloseTo(0.45, 12);
    // r has no task record: its attestation weighs nothing; the newest attestation per attester counts.
    const mixed = computeReputation({ tasks, attestations: [attest(r, w, 1), attest(a, w, 1, t + 10), attest(a, w, 0.2, t + 20)] }).get(w.pk)!;
    expect(mixed.support).toBeCloseTo(0.1, 12);
    // Self-attestation and own requests never count.
    const self = computeReputation({ tasks: [task(w, w, 'completed')], attestations: [attest(w, w, 1)] });
    expect(self.get(w.pk)).toBeUndefined();
  });

  it('a failure counts against, and many strong attesters saturate at the cap', () => {
    const tasks = [task(r, w, 'completed'), task(r, w, 'failed')];
    expect(computeReputation({ tasks, attestations: [] }).get(w.pk)?.taskStanding).toBeCloseTo(1 / 7, 12);
    const strong = Array.from({ length: 4 }, () => key());
    const history = [...tasks, ...strong.flatMap((s) => Array.from({ length: 10 }, () => task(r, s, 'completed')))];
    const rep = computeReputation({ tasks: history, attestations: strong.map((s) => attest(s, w, 1)) }).get(w.pk)!;
    expect(rep.score).toBeCloseTo(0.8 / 7 + 0.2, 12);
  });

  it('follows the identity across rotations; a revoked key’s attestation is ignored', () => {
    const k0 = key();
    const k1 = key();
    const k2 = key();
    const inc = sign(k0, makeInception({ nextKey: k1.pk }, ++t));
    const rot = sign(k1, makeRotation({ head: getKeyEvent(inc)!, currentSecretKey: k0.sk, newKey: k1.pk, nextKey: k2.pk }, ++t));
    const log = verifyKeyLog(inc.id, [inc, rot]) as KeyLog;
    const tasks = [task(r, k0, 'completed'), task(r, k1, 'completed'), task(r, k1, 'failed')];
    const rep = computeReputation({ tasks, attestations: [], logs: [log] });
    expect(rep.get(inc.id)).toMatchObject({ completed: 2, failed: 1 });
    expect(rep.get(k0.pk)).toBeUndefined();
    // After a revocation, the revoked key attests nothing.
    const k3 = key();
    const rev = sign(k2, makeRevocation({ head: getKeyEvent(rot)!, nextKey: k3.pk }, ++t));
    const revoked = verifyKeyLog(inc.id, [inc, rot, rev]) as KeyLog;
    const rated = computeReputation({
      tasks: [...tasks, ...Array.from({ length: 5 }, () => task(r, w, 'completed'))],
      attestations: [attest(k1, w, 1, ++t)],
      logs: [revoked],
    });
    expect(rated.get(w.pk)?.support).toBe(0);
  });

  it('reads only well-formed attestations', () => {
    expect(getAttestation(attest(a, w, 0.25))).toMatchObject({ attester: a.pk, subject: w.pk, rating: 0.25 });
    const bad = sign(a, {
      kind: 4349,
      created_at: ++t,
      content: '',
      tags: [
        ['p', w.pk],
        ['rating', '2'],
      ],
    });
    expect(getAttestation(bad)).toBeUndefined();
  });
});
