import { describe, expect, it } from 'vitest';
import type { NostrEvent } from '../../../shared/event.js';
import { createLocalClaims, ReplayedReads, runWithLaterReads } from '../../../relay/policies/later-reads.js';
import { firstEventRejection, type PolicyContext, type RejectEvent } from '../../../relay/policies/types.js';
import type { StoredEvent } from '../../../relay/store/types.js';

const ev = { id: 'e1', kind: 1, pubkey: 'p', created_at: 0, tags: [], content: '', sig: '' } as NostrEvent;
const ctx: PolicyContext = { authed: new Set(), ip: '127.0.0.1', now: 1000 };

describe('firstEventRejection', () => {
  it('answers at once (no promise) while every hook does', () => {
    const hooks: RejectEvent[] = [() => undefined, () => 'invalid: second', () => 'invalid: third'];
    const r = firstEventRejection(hooks, ev, ctx);
    expect(r).toBe('invalid: second');
    expect(firstEventRejection([() => undefined], ev, ctx)).toBeUndefined();
  });

  it('runs the hooks after one that answers later only once it has, first reason in order', async () => {
    const calls: string[] = [];
    const hooks: RejectEvent[] = [
      () => void calls.push('a'),
      () => {
        calls.push('b');
        return new Promise((resolve) => setTimeout(() => resolve(undefined), 10));
      },
      () => {
        calls.push('c');
        return Promise.resolve('invalid: c');
      },
      () => {
        calls.push('d');
        return 'invalid: d';
      },
    ];
    const r = firstEventRejection(hooks, ev, ctx);
    expect(r).toBeInstanceOf(Promise);
    expect(calls).toEqual(['a', 'b']);
    expect(await r).toBe('invalid: c');
    expect(calls).toEqual(['a', 'b', 'c']);
  });
});

describe('ReplayedReads', () => {
  // A store whose every read answers later and is counted.
  const makeStore = () => {
    const rows = new Map<string, string>([
      ['x', 'y'],
      ['y', 'z'],
    ]);
    let reads = 0;
    return {
      reads: () => reads,
      store: {
        query: async (filters: readonly { ids?: string[] }[]): Promise<StoredEvent[]> => {
          reads++;
          const next = rows.get(filters[0]!.ids![0]!);
          return next === undefined ? [] : [{ seq: 1, raw: next }];
        },
        isKnown: async () => undefined,
      },
    };
  };

  it('runs a hook that reads nothing at once, and one that walks a chain once per missing answer', async () => {
    const s = makeStore();
    const reads = new ReplayedReads(s.store);
    expect(reads.run(() => 'now')).toBe('now');
    let runs = 0;
    const walk = () => {
      runs++;
      const seen = ['x'];
      for (let row = reads.query([{ ids: ['x'] }])[0]; row; row = reads.query([{ ids: [row.raw] }])[0]) seen.push(row.raw);
      return seen.join('>');
    };
    expect(await reads.run(walk)).toBe('x>y>z');
    expect(s.reads()).toBe(3);
    expect(runs).toBe(4);
    // No answer outlives its run: the next run reads again.
    expect(await reads.run(walk)).toBe('x>y>z');
    expect(s.reads()).toBe(6);
    expect(() => reads.query([{ ids: ['x'] }])).toThrow(/outside ReplayedReads.run/);
  });

  it('claims, then decides again: a held key refuses the second event, a release lets the next one through', async () => {
    const s = makeStore();
    const reads = new ReplayedReads(s.store);
    const claims = createLocalClaims(60);
    const held = new Map<string, readonly string[]>();
    let decisions = 0;
    const hook: RejectEvent = () => {
      decisions++;
      reads.query([{ ids: ['x'] }]);
      return undefined;
    };
    const policy = runWithLaterReads(reads, hook, { store: claims, rule: { keys: () => ['prev:x'], reason: (k, h) => `invalid: ${k} held by ${h}` }, held });
    expect(await policy(ev, ctx)).toBeUndefined();
    expect(decisions).toBe(4); // read, decide; claim; read again, decide
    expect(held.get('e1')).toEqual(['prev:x']);
    expect(await policy({ ...ev, id: 'e2' }, ctx)).toBe('invalid: prev:x held by e1');
    await claims.release(['prev:x'], 'e1');
    expect(await policy({ ...ev, id: 'e2' }, ctx)).toBeUndefined();
    // A claim lapses after the claim window.
    expect(await policy({ ...ev, id: 'e3' }, { ...ctx, now: ctx.now + 61 })).toBeUndefined();
  });
});
