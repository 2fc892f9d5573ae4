import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CrdtError } from '../../../client/crdt/errors.js';
import { createSharedDoc, type SharedDoc } from '../../../client/crdt/shared-doc.js';
import { pk } from './sim.js';

const OWNER = pk(0);

/** Replica `i` with client id `client` and a clock the test moves by hand. */
function replica(i: number, client: number, clock: { t: number }): SharedDoc {
  return createSharedDoc({
    docId: 'd',
    self: pk(i),
    membership: { owner: OWNER, members: [pk(1), pk(2), pk(3)] },
    clientId: client,
    now: () => clock.t,
  });
}

/** Reliable all-pairs state-vector sync. */
function sync(...docs: SharedDoc[]): void {
  for (const a of docs) for (const b of docs) if (a !== b) b.receive(a.diff(b.stateVector()), { author: a.self, kind: 'sync' });
}

/** Every delivery order of the replicas' states into fresh observers gives the same `read` result. */
function inEveryOrder<T>(docs: SharedDoc[], read: (d: SharedDoc) => T): T {
  const results: T[] = [];
  const perms = (xs: SharedDoc[]): SharedDoc[][] =>
    xs.length <= 1 ? [xs] : xs.flatMap((x, i) => perms([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p]));
  for (const order of perms(docs)) {
    const obs = replica(0, 999, { t: 0 });
    for (const d of order) obs.receive(d.encodeState(), { author: d.self });
    results.push(read(obs));
  }
  for (const r of results) expect(r).toEqual(results[0]);
  return results[0]!;
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof CrdtError ? err.code : 'not a CrdtError';
  }
  return undefined;
}

describe('last-writer-wins map', () => {
  it.each([
    {
      name: 'later timestamp wins',
      writes: [
        [1, 10, 1_000, 'a'],
        [2, 20, 2_000, 'b'],
      ],
      want: 'b',
    },
    {
      name: 'later timestamp wins over higher client id',
      writes: [
        [1, 90, 5_000, 'a'],
        [2, 20, 2_000, 'b'],
      ],
      want: 'a',
    },
    {
      name: 'equal timestamps: higher client id wins',
      writes: [
        [1, 10, 3_000, 'a'],
        [2, 20, 3_000, 'b'],
      ],
      want: 'b',
    },
    {
      name: 'three concurrent writers',
      writes: [
        [1, 30, 3_000, 'a'],
        [2, 20, 4_000, 'b'],
        [3, 10, 4_000, 'c'],
      ],
      want: 'b',
    },
    {
      name: 'concurrent delete with later timestamp wins',
      writes: [
        [1, 10, 1_000, 'a'],
        [2, 20, 2_000, null],
      ],
      want: undefined,
    },
    {
      name: 'concurrent set with later timestamp beats delete',
      writes: [
        [1, 10, 3_000, 'a'],
        [2, 20, 2_000, null],
      ],
      want: 'a',
    },
  ] as const)('concurrent writes: $name, in every delivery order', ({ writes, want }) => {
    const base = replica(1, 1, { t: 0 });
    base.map('m').set('k', 'seed');
    const docs = writes.map(([i, client, t, value]) => {
      const d = replica(i, client, { t });
      d.receive(base.encodeState(), { author: base.self });
      if (value === null) d.map('m').delete('k');
      else d.map('m').set('k', value);
      return d;
    });
    expect(inEveryOrder(docs, (d) => d.map('m').get('k'))).toBe(want);
  });

  it('a writer that has seen a value beats it even with a clock hours behind, and supersedes all claims', () => {
    const fast = { t: 10_000_000 };
    const slow = { t: 1_000 };
    const a = replica(1, 1, fast);
    const b = replica(2, 2, slow);
    const c = replica(3, 3, fast);
    a.map('m').set('k', 'from a');
    c.map('m').set('k', 'from c');
    sync(a, b, c);
    expect(b.map('m').get('k')).toBe('from c');
    expect(b.ydoc.getMap('lww:m').size).toBe(2);
    b.map('m').set('k', 'from slow b');
    sync(a, b, c);
    for (const d of [a, b, c]) expect(d.map('m').get('k')).toBe('from slow b');
    // the two superseded claims were deleted: one claim per key is left
    expect(a.ydoc.getMap('lww:m').size).toBe(1);
  });

  it('reads its own writes inside a transaction, copies values and lists sorted live keys', () => {
    const a = replica(1, 1, { t: 5 });
    const v = { mood: 'ok', tags: ['x'] };
    a.transact(() => {
      a.map('m').set('b', v);
      expect(a.map('m').get('b')).toEqual({ mood: 'ok', tags: ['x'] });
      a.map('m').set('a', 1);
      a.map('m').delete('a');
      expect(a.map('m').has('a')).toBe(false);
    });
    v.tags.push('mutated');
    expect(a.map('m').get('b')).toEqual({ mood: 'ok', tags: ['x'] });
    a.map('m').set('c', null);
    expect(a.map('m').keys()).toEqual(['b', 'c']);
    expect(a.map('m').size).toBe(2);
    expect(a.map('m').toJSON()).toEqual({ b: { mood: 'ok', tags: ['x'] }, c: null });
  });

  it.each([
    { name: 'NUL in key', run: (d: SharedDoc) => d.map('m').set('a\u0000b', 1), code: 'ROOST_ERR_CRDT_BAD_KEY' },
    { name: 'undefined value', run: (d: SharedDoc) => d.map('m').set('k', undefined as never), code: 'ROOST_ERR_CRDT_BAD_VALUE' },
    { name: 'NaN value', run: (d: SharedDoc) => d.map('m').set('k', { x: NaN }), code: 'ROOST_ERR_CRDT_BAD_VALUE' },
    { name: 'class instance', run: (d: SharedDoc) => d.map('m').set('k', new Date() as never), code: 'ROOST_ERR_CRDT_BAD_VALUE' },
    { name: 'zero increment', run: (d: SharedDoc) => d.counters('c').increment('k', 0), code: 'ROOST_ERR_CRDT_BAD_VALUE' },
    { name: 'negative decrement', run: (d: SharedDoc) => d.counters('c').decrement('k', -1), code: 'ROOST_ERR_CRDT_BAD_VALUE' },
    { name: 'infinite increment', run: (d: SharedDoc) => d.counter('c').increment(Infinity), code: 'ROOST_ERR_CRDT_BAD_VALUE' },
    { name: 'NUL in set element', run: (d: SharedDoc) => d.set('s').add('\u0000'), code: 'ROOST_ERR_CRDT_BAD_KEY' },
  ])('rejects $name with $code', ({ run, code }) => {
    expect(codeOf(() => run(replica(1, 1, { t: 0 })))).toBe(code);
  });

  it('ignores malformed claims a member might write with raw Yjs, the same way on every replica', () => {
    const a = replica(1, 1, { t: 10 });
    a.ydoc.getMap('lww:m').set('k\u00007', { nope: true });
    a.ydoc.getMap('lww:m').set('no-slot', { t: 99, v: 'x' });
    a.map('m').set('j', 'fine');
    expect(a.map('m').toJSON()).toEqual({ j: 'fine' });
  });
});

describe('add-wins set', () => {
  it.each([
    { name: 'add concurrent with remove: add wins', a: 'add', b: 'remove', want: ['p'] },
    { name: 'remove concurrent with remove', a: 'remove', b: 'remove', want: [] },
    { name: 'add concurrent with add', a: 'add', b: 'add', want: ['p'] },
    { name: 'remove concurrent with nothing', a: 'remove', b: 'none', want: [] },
  ] as const)('$name', ({ a, b, want }) => {
    const base = replica(1, 1, { t: 0 });
    base.set('peers').add('p');
    const docs = [a, b].map((op, i) => {
      const d = replica(i + 2, 10 + i, { t: 0 });
      d.receive(base.encodeState(), { author: base.self });
      if (op === 'add') d.set('peers').add('p');
      if (op === 'remove') d.set('peers').remove('p');
      return d;
    });
    expect(inEveryOrder(docs, (d) => d.set('peers').values())).toEqual(want);
  });

  it('a remove that has seen the add removes it', () => {
    const a = replica(1, 1, { t: 0 });
    const b = replica(2, 2, { t: 0 });
    a.set('peers').add('p');
    a.set('peers').add('q');
    sync(a, b);
    b.set('peers').remove('p');
    sync(a, b);
    expect(a.set('peers').values()).toEqual(['q']);
    expect(a.set('peers').size).toBe(1);
    expect(a.set('peers').has('p')).toBe(false);
  });
});

describe('counters', () => {
  it('never loses a concurrent increment or decrement (property over random schedules)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ who: fc.integer({ min: 0, max: 2 }), by: fc.integer({ min: 1, max: 9 }), up: fc.boolean(), syncAfter: fc.boolean() }), {
          maxLength: 40,
        }),
        (ops) => {
          const docs = [0, 1, 2].map((i) => replica(i + 1, i + 1, { t: 0 }));
          let want = 0;
          for (const op of ops) {
            const c = docs[op.who]!.counters('trust');
            if (op.up) c.increment('peer', op.by);
            else c.decrement('peer', op.by);
            want += op.up ? op.by : -op.by;
            if (op.syncAfter) sync(docs[op.who]!, docs[(op.who + 1) % 3]!);
          }
          sync(...docs);
          for (const d of docs) expect(d.counters('trust').value('peer')).toBe(want);
        },
      ),
      { seed: 42, numRuns: 150 },
    );
  });

  it('keeps counters of a family apart and reads untouched ones as zero', () => {
    const a = replica(1, 1, { t: 0 });
    a.counters('trust').increment('x', 2.5);
    a.counters('trust').decrement('y');
    a.counter('wakeups').increment();
    a.counter('wakeups').increment(4);
    a.counter('wakeups').decrement(2);
    expect(a.counters('trust').toJSON()).toEqual({ x: 2.5, y: -1 });
    expect(a.counters('trust').value('z')).toBe(0);
    expect(a.counter('wakeups').value()).toBe(3);
  });
});

describe('registers and status maps', () => {
  it('a register keeps the last write and can be cleared', () => {
    const clock = { t: 1 };
    const a = replica(1, 1, clock);
    const r = a.register<{ leader: string }>('leader');
    expect(r.get()).toBeUndefined();
    r.set({ leader: 'a' });
    clock.t = 2;
    r.set({ leader: 'b' });
    expect(r.get()).toEqual({ leader: 'b' });
    r.clear();
    expect(r.get()).toBeUndefined();
  });

  it('every agent writes its own status and reads everyone else', () => {
    const docs = [1, 2, 3].map((i) => replica(i, i, { t: 100 * i }));
    docs.forEach((d, i) => {
      d.status().set('mood', ['calm', 'busy', 'sleepy'][i]!);
      d.status().set('energy', i / 2);
      d.status().set('capabilities', ['search', `tool-${i}`]);
    });
    sync(...docs);
    for (const d of docs) {
      expect(d.statusAuthors()).toEqual([pk(1), pk(2), pk(3)].sort());
      expect(d.status(pk(2)).toJSON()).toEqual({ capabilities: ['search', 'tool-1'], energy: 0.5, mood: 'busy' });
    }
  });

  it('observers fire for local and remote changes', () => {
    const a = replica(1, 1, { t: 0 });
    const b = replica(2, 2, { t: 0 });
    let seen = 0;
    const off = b.map('m').observe(() => seen++);
    b.map('m').set('k', 1);
    a.map('m').set('j', 2);
    sync(a, b);
    expect(seen).toBe(2);
    off();
    a.map('m').set('j', 3);
    sync(a, b);
    expect(seen).toBe(2);
    expect(b.map('m').get('j')).toBe(3);
  });
});
