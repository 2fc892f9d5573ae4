import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBallot, makeProposal } from '../../../shared/decisions.js';
import type { NostrEvent } from '../../../shared/event.js';
import { getTaskRequest, makeTaskOffer, makeTaskRequest, makeTaskStep, type TaskRequest } from '../../../shared/tasks.js';
import { makeKey, nowSeconds, signEvent, type Key } from '../../helpers/events.js';
import { RawClient } from '../../helpers/raw-client.js';
import type { TestRelay } from '../../helpers/relay.js';
import { testBackends } from '../../helpers/backends.js';

// The same rules on every store: SQLite decides on the caller's turn, the others over replayed reads.
describe.each(testBackends())('task and ballot policies ($name)', (backend) => {
  let relay: TestRelay;
  let c: RawClient;
  beforeAll(async () => {
    relay = await backend.start();
    c = await RawClient.connect(relay.url);
  }, 30_000);
  afterAll(async () => {
    c.close();
    await relay.close();
  });

  const requester = makeKey();
  const alice = makeKey();
  const bob = makeKey();
  const eve = makeKey();
  let t = nowSeconds() - 100;

  async function put(
    key: Key,
    tpl: { kind: number; tags: string[][]; content: string; created_at: number },
  ): Promise<{ ev: NostrEvent; ok: boolean; reason: string }> {
    const ev = signEvent(key, tpl);
    const [, , ok, reason] = (await c.publish(ev)) as [string, string, boolean, string];
    return { ev, ok, reason };
  }

  describe('task policy (public tasks)', () => {
    it('refuses forged transitions with NIP-01 reasons and keeps the chain', async () => {
      const req = await put(requester, makeTaskRequest({ capabilities: ['summarise'], input: 'paper' }, ++t));
      expect(req.ok).toBe(true);
      const request = getTaskRequest(req.ev) as TaskRequest;
      const selfOffer = await put(requester, makeTaskOffer(request, {}, ++t));
      expect(selfOffer).toMatchObject({ ok: false, reason: expect.stringMatching(/^invalid: the requester cannot offer/) });
      const offerA = await put(alice, makeTaskOffer(request, { note: 'a' }, ++t));
      const offerB = await put(bob, makeTaskOffer(request, { note: 'b' }, ++t));
      expect([offerA.ok, offerB.ok]).toEqual([true, true]);

      const selfAccept = await put(
        bob,
        makeTaskStep({ root: request.id, prev: request.id, state: 'working', worker: bob.pk, offer: offerB.ev.id, to: requester.pk }, ++t),
      );
      expect(selfAccept).toMatchObject({ ok: false, reason: 'invalid: only the requester accepts an offer' });
      const accept = await put(
        requester,
        makeTaskStep({ root: request.id, prev: request.id, state: 'working', worker: alice.pk, offer: offerA.ev.id, to: alice.pk }, ++t),
      );
      expect(accept.ok).toBe(true);
      const secondAccept = await put(
        requester,
        makeTaskStep({ root: request.id, prev: request.id, state: 'working', worker: bob.pk, offer: offerB.ev.id, to: bob.pk }, ++t),
      );
      expect(secondAccept).toMatchObject({ ok: false, reason: expect.stringMatching(/^invalid: step .* already has a successor/) });

      const thirdPartyResult = await put(
        eve,
        makeTaskStep({ root: request.id, prev: accept.ev.id, state: 'completed', worker: alice.pk, to: requester.pk, content: 'fake' }, ++t),
      );
      expect(thirdPartyResult).toMatchObject({ ok: false, reason: 'invalid: only the assigned worker moves the task to completed' });
      const loserResult = await put(bob, makeTaskStep({ root: request.id, prev: accept.ev.id, state: 'completed', worker: bob.pk, to: requester.pk }, ++t));
      expect(loserResult.ok).toBe(false);
      const progress = await put(
        alice,
        makeTaskStep({ root: request.id, prev: accept.ev.id, state: 'working', worker: alice.pk, to: requester.pk, content: '50%' }, ++t),
      );
      expect(progress.ok).toBe(true);
      const result = await put(
        alice,
        makeTaskStep({ root: request.id, prev: progress.ev.id, state: 'completed', worker: alice.pk, to: requester.pk, content: 'done' }, ++t),
      );
      expect(result.ok).toBe(true);
      const afterEnd = await put(requester, makeTaskStep({ root: request.id, prev: result.ev.id, state: 'canceled', worker: alice.pk, to: alice.pk }, ++t));
      expect(afterEnd).toMatchObject({ ok: false, reason: 'invalid: task already completed' });
      // A resubmitted step still gets its duplicate answer.
      c.send(['EVENT', result.ev]);
      const dup = await c.next((f) => f[0] === 'OK' && f[1] === result.ev.id && String(f[3]).startsWith('duplicate:'), 'duplicate OK');
      expect(dup[2]).toBe(true);

      const stored = await c.req('chain', { kinds: [4342], '#e': [request.id] });
      expect(stored.map((e) => e.id).sort()).toEqual([accept.ev.id, progress.ev.id, result.ev.id].sort());
    });

    it('refuses steps of a task this relay does not hold, and malformed task events', async () => {
      const missing = 'ab'.repeat(32);
      const orphan = await put(alice, makeTaskStep({ root: missing, prev: missing, state: 'working', worker: alice.pk, to: requester.pk }, ++t));
      expect(orphan).toMatchObject({ ok: false, reason: `invalid: task request ${missing} is not on this relay` });
      const noCap = await put(requester, { kind: 4340, tags: [], content: 'x', created_at: ++t });
      expect(noCap).toMatchObject({ ok: false, reason: 'invalid: malformed task request' });
    });
  });

  describe('ballot policy', () => {
    it('refuses ballots outside the electorate, vetoes without the right, unknown options and late ballots', async () => {
      const deadline = nowSeconds() + 600;
      const proposal = await put(
        requester,
        makeProposal(
          {
            question: 'q',
            options: ['yes', 'no'],
            electorate: { type: 'pubkeys', pubkeys: [alice.pk, bob.pk] },
            rule: { type: 'majority' },
            vetoHolders: [requester.pk],
            deadline,
          },
          ++t,
        ),
      );
      expect(proposal.ok).toBe(true);
      const p = { id: proposal.ev.id, proposer: requester.pk };
      expect((await put(alice, makeBallot(p, 'yes', nowSeconds()))).ok).toBe(true);
      expect((await put(alice, makeBallot(p, 'no', nowSeconds() + 1))).ok).toBe(true); // replaces, later
      expect(await put(eve, makeBallot(p, 'yes', nowSeconds()))).toMatchObject({ ok: false, reason: 'restricted: voter not in the electorate' });
      expect(await put(bob, makeBallot(p, 'veto', nowSeconds()))).toMatchObject({ ok: false, reason: 'restricted: only a veto holder may veto' });
      expect((await put(requester, makeBallot(p, 'veto', nowSeconds()))).ok).toBe(true);
      expect(await put(bob, makeBallot(p, 'maybe', nowSeconds()))).toMatchObject({ ok: false, reason: 'invalid: not one of the options' });
      expect(await put(bob, makeBallot(p, 'yes', deadline + 1))).toMatchObject({ ok: false, reason: 'invalid: ballot cast after the deadline' });
      const bad = await put(requester, { kind: 4343, tags: [['option', 'a']], content: 'q', created_at: ++t });
      expect(bad).toMatchObject({ ok: false, reason: 'invalid: malformed proposal' });
    });

    it('refuses any ballot once voting has closed', async () => {
      const deadline = nowSeconds() - 400;
      const proposal = await put(
        requester,
        makeProposal(
          { question: 'q', options: ['yes', 'no'], electorate: { type: 'pubkeys', pubkeys: [alice.pk] }, rule: { type: 'majority' }, deadline },
          deadline - 100,
        ),
      );
      expect((await put(alice, makeBallot({ id: proposal.ev.id, proposer: requester.pk }, 'yes', deadline - 50))).reason).toBe(
        'invalid: voting on this proposal has closed',
      );
    });
  });
});
