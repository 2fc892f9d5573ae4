import { describe, expect, it } from 'vitest';
import { createAwareness, type AwarenessChange } from '../../../client/crdt/awareness.js';
import { createSharedDoc } from '../../../client/crdt/shared-doc.js';
import { pk } from './sim.js';

describe('awareness', () => {
  it('tracks peers by their latest message, expires the silent ones and never touches the document', () => {
    const clock = { t: 1_000_000 };
    const doc = createSharedDoc({ docId: 'd', self: pk(0), membership: { owner: pk(0), members: [pk(1), pk(2)] } });
    const mine = createAwareness({ self: pk(0), now: () => clock.t, timeoutMs: 30_000, isAllowed: (p) => doc.isMember(p) });
    const a1 = createAwareness({ self: pk(1), now: () => clock.t });
    const changes: AwarenessChange[] = [];
    mine.onChange((c) => changes.push(c));
    const before = doc.encodeState();

    const m1 = a1.setLocal({ looking: 'tasks' });
    expect(mine.receive(pk(1), m1)).toBe(true);
    expect(mine.receive(pk(1), m1)).toBe(false);
    clock.t += 1;
    const m2 = a1.setLocal({ looking: 'status' });
    expect(m2.clock).toBeGreaterThan(m1.clock);
    expect(mine.receive(pk(1), m2)).toBe(true);
    expect(mine.receive(pk(1), m1)).toBe(false);
    expect(mine.receive(pk(9), { clock: 1, state: { evil: true } })).toBe(false);
    mine.setLocal({ looking: 'board' });
    expect(Object.fromEntries(mine.states())).toEqual({ [pk(0)]: { looking: 'board' }, [pk(1)]: { looking: 'status' } });

    clock.t += 20_000;
    expect(mine.prune()).toEqual([]);
    clock.t += 20_000;
    expect(mine.prune()).toEqual([pk(1)]);
    expect([...mine.states().keys()]).toEqual([pk(0)]);
    expect(changes).toEqual([
      { added: [pk(1)], updated: [], removed: [] },
      { added: [], updated: [pk(1)], removed: [] },
      { added: [], updated: [], removed: [pk(1)] },
    ]);
    expect(doc.encodeState()).toEqual(before);
  });

  it('a restarted agent is heard at once, because clocks are timestamps', () => {
    const clock = { t: 5_000 };
    const mine = createAwareness({ self: pk(0), now: () => clock.t });
    const first = createAwareness({ self: pk(1), now: () => clock.t });
    mine.receive(pk(1), first.setLocal({ v: 1 }));
    clock.t += 10;
    const restarted = createAwareness({ self: pk(1), now: () => clock.t });
    expect(mine.receive(pk(1), restarted.setLocal({ v: 2 }))).toBe(true);
    expect(mine.states().get(pk(1))).toEqual({ v: 2 });
  });

  it('withdraws with a null state and renews only after half the timeout', () => {
    const clock = { t: 0 };
    const mine = createAwareness({ self: pk(0), now: () => clock.t, timeoutMs: 10_000 });
    const peer = createAwareness({ self: pk(1), now: () => clock.t, timeoutMs: 10_000 });
    expect(peer.renew()).toBeUndefined();
    mine.receive(pk(1), peer.setLocal({ here: true }));
    clock.t += 4_000;
    expect(peer.renew()).toBeUndefined();
    clock.t += 1_000;
    const again = peer.renew();
    expect(again?.state).toEqual({ here: true });
    mine.receive(pk(1), again!);
    clock.t += 9_000;
    expect(mine.prune()).toEqual([]);
    expect(mine.receive(pk(1), peer.setLocal(null))).toBe(true);
    expect(mine.states().size).toBe(0);
    expect(peer.getLocal()).toBeNull();
    expect(peer.renew()).toBeUndefined();
  });
});
