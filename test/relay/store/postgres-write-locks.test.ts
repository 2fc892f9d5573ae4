import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NostrEvent, VerifiedEvent } from '../../../shared/event.js';
import { PostgresStore } from '../../../relay/store/postgres.js';
import { createPgDatabase, stopPgServer } from '../../helpers/backends.js';
import { postgresSkipReason } from '../../helpers/postgres.js';
import { createRng } from '../../helpers/prng.js';

// The write path's per-key locks across instances: three stores (separate pools, as separate relay
// processes have) write mixed batches at once — plain events, replaceable and addressable versions
// of the same few keys, NIP-09 deletions by id and by address — some events sent to every instance, each
// instance's list in a different order. Whatever the interleaving, the stored set must be the one
// the rules give (newest version per key, deleted ids and addresses gone), every id stored once, no
// batch failed (a lock-order deadlock is a failed batch), and every instance's tail strictly in order.
// With a lock missing from the scope (say the replaceable key) two instances both store a version;
// with the keys taken in a different order on each instance, PostgreSQL breaks a deadlock by failing one.
const SEED = Number(process.env.ROOST_FUZZ_SEED ?? 20261206);
const skip = postgresSkipReason();
if (skip) console.warn(skip);

const hex = (n: number) => n.toString(16).padStart(64, '0');
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

type Ev = NostrEvent;

const newer = (a: Ev, b: Ev) => a.created_at > b.created_at || (a.created_at === b.created_at && a.id < b.id);

describe.skipIf(skip !== undefined)('PostgreSQL write locks', () => {
  let url: string;
  beforeAll(async () => {
    url = await createPgDatabase();
  }, 60_000);
  afterAll(stopPgServer);

  it(`mixed batches from 3 instances store what the rules give, once, without deadlock (seed ${SEED})`, async () => {
    const rng = createRng(SEED);
    let nextId = 1;
    const make = (pubkey: string, kind: number, created_at: number, tags: string[][]): Ev => ({
      id: hex(0xabc000000 + nextId++),
      pubkey,
      created_at,
      kind,
      tags,
      content: '',
      sig: '0'.repeat(128),
    });
    const authors = [hex(101), hex(102), hex(103)];
    const plain: Ev[] = [];
    const replaceable: Ev[] = [];
    const addressable: Ev[] = [];
    const deletions: Ev[] = [];
    for (let i = 0; i < 150; i++) plain.push(make(rng.pick(authors), 1, 1000 + i, [['p', rng.pick(authors)]]));
    for (let i = 0; i < 120; i++) replaceable.push(make(rng.pick(authors), rng.pick([0, 10002]), rng.int(1000, 1100), []));
    for (let i = 0; i < 120; i++) addressable.push(make(rng.pick(authors), 30000, rng.int(1000, 1100), [['d', rng.pick(['a', 'b'])]]));
    for (let i = 0; i < 30; i++) {
      const author = rng.pick(authors);
      // Mostly the author's own events; now and then another author's (which must stay).
      const tags = rng.subset(plain, 3).map((e) => ['e', e.id]);
      if (rng.chance(0.5)) tags.push(['a', `30000:${author}:${rng.pick(['a', 'b'])}`]);
      deletions.push(make(author, 5, rng.int(1000, 1030), tags));
    }
    const all = [...plain, ...replaceable, ...addressable, ...deletions];

    // What the rules give, whatever the order of arrival.
    const expected = new Set<string>();
    const deletedIds = new Set(deletions.flatMap((d) => d.tags.filter((t) => t[0] === 'e').map((t) => `${t[1]}:${d.pubkey}`)));
    for (const e of plain) if (!deletedIds.has(`${e.id}:${e.pubkey}`)) expected.add(e.id);
    for (const d of deletions) expected.add(d.id);
    const newest = new Map<string, Ev>();
    for (const e of replaceable) {
      const k = `${e.pubkey}:${e.kind}`;
      const cur = newest.get(k);
      if (!cur || newer(e, cur)) newest.set(k, e);
    }
    const until = new Map<string, number>();
    for (const d of deletions) {
      for (const t of d.tags) if (t[0] === 'a') until.set(t[1]!, Math.max(until.get(t[1]!) ?? 0, d.created_at));
    }
    for (const e of addressable) {
      const addr = `30000:${e.pubkey}:${e.tags[0]![1]}`;
      if (e.created_at <= (until.get(addr) ?? -1)) continue;
      const cur = newest.get(addr);
      if (!cur || newer(e, cur)) newest.set(addr, e);
    }
    for (const e of newest.values()) expected.add(e.id);

    const WRITERS = 3;
    const tails: Array<Array<{ seq: number; id: string }>> = [];
    const stores: PostgresStore[] = [];
    for (let i = 0; i < WRITERS + 1; i++) {
      const seen: Array<{ seq: number; id: string }> = [];
      tails.push(seen);
      stores.push(
        await PostgresStore.open({
          url,
          poolSize: 3,
          pollMs: 50,
          commitMaxBatch: 25,
          onStored: (ev, seq) => seen.push({ seq, id: ev.id }),
          beforeCommit: () => sleep(rng.int(0, 4)),
        }),
      );
    }
    // Each event to one instance, a fifth of the plain ones to all three (a shared id serialises the
    // batches holding it, so most batches share none); each instance's list in its own random order.
    const lists: Ev[][] = Array.from({ length: WRITERS }, () => []);
    for (const e of all) {
      if (e.kind === 1 && rng.chance(0.2)) for (const list of lists) list.push(e);
      else lists[rng.int(0, WRITERS - 1)]!.push(e);
    }
    for (const list of lists) {
      for (let i = list.length - 1; i > 0; i--) {
        const j = rng.int(0, i);
        [list[i], list[j]] = [list[j]!, list[i]!];
      }
    }
    const results: Array<{ ev: Ev; status: string; seq?: number; reason?: string }> = [];
    await Promise.all(
      lists.map(async (list, w) => {
        const pending: Array<Promise<void>> = [];
        let i = 0;
        while (i < list.length) {
          const burst = list.slice(i, i + rng.int(1, 40));
          i += burst.length;
          for (const ev of burst) {
            pending.push(
              stores[w]!.write(ev as VerifiedEvent).then(
                (r) =>
                  void results.push({
                    ev,
                    status: r.status,
                    seq: r.status === 'stored' ? r.seq : undefined,
                    reason: r.status === 'rejected' ? r.reason : undefined,
                  }),
              ),
            );
          }
          await sleep(rng.int(0, 5));
        }
        await Promise.all(pending);
      }),
    );
    for (const s of stores) await s.catchUp();

    // No batch failed (a deadlock, a unique violation from a duplicate that slipped through).
    expect(results.filter((r) => r.reason?.startsWith('error:')).map((r) => r.reason)).toEqual([]);
    // Every id stored at most once; each event that stays was stored exactly once.
    const storedCount = new Map<string, number>();
    for (const r of results) if (r.status === 'stored') storedCount.set(r.ev.id, (storedCount.get(r.ev.id) ?? 0) + 1);
    expect([...storedCount.entries()].filter(([, n]) => n > 1)).toEqual([]);
    for (const id of expected) expect(storedCount.get(id), `stored once: ${id}`).toBe(1);
    // The history is serial in sequence order (commit order): each version stored for a key is newer
    // than the one stored before it, nothing is stored after a deletion that covers it. Two instances
    // deciding on the same key at once break this, even where a later version hides it in the end.
    const stored = results.filter((r) => r.status === 'stored').sort((a, b) => a.seq! - b.seq!);
    const lastOfKey = new Map<string, Ev>();
    const coveredIds = new Set<string>();
    const coveredUntil = new Map<string, number>();
    const violations: string[] = [];
    for (const { ev, seq } of stored) {
      const key = ev.kind === 30000 ? `30000:${ev.pubkey}:${ev.tags[0]![1]}` : ev.kind === 1 || ev.kind === 5 ? undefined : `${ev.pubkey}:${ev.kind}`;
      if (coveredIds.has(`${ev.id}:${ev.pubkey}`)) violations.push(`seq ${seq}: ${ev.id} stored after its deletion`);
      if (key !== undefined) {
        const last = lastOfKey.get(key);
        if (last && !newer(ev, last)) violations.push(`seq ${seq}: ${key} at ${ev.created_at} stored after ${last.created_at}`);
        if (ev.created_at <= (coveredUntil.get(key) ?? -1)) violations.push(`seq ${seq}: ${key} at ${ev.created_at} stored after its address was deleted`);
        lastOfKey.set(key, ev);
      }
      if (ev.kind !== 5) continue;
      for (const t of ev.tags) {
        if (t[0] === 'e') coveredIds.add(`${t[1]}:${ev.pubkey}`);
        if (t[0] === 'a') coveredUntil.set(t[1]!, Math.max(coveredUntil.get(t[1]!) ?? 0, ev.created_at));
      }
    }
    expect(violations).toEqual([]);
    // The stored set is exactly what the rules give: one version per key, deletions applied.
    const rows = (await stores[0]!.pool.query<{ id: string }>('SELECT id FROM events')).rows.map((r) => r.id);
    expect(rows.length).toBe(new Set(rows).size);
    expect(new Set(rows)).toEqual(expected);
    // Every instance's tail: strictly increasing, no id twice, every remaining event delivered.
    for (const [i, tail] of tails.entries()) {
      for (let k = 1; k < tail.length; k++) expect(tail[k]!.seq, `tail ${i} in order`).toBeGreaterThan(tail[k - 1]!.seq);
      expect(new Set(tail.map((t) => t.id)).size, `tail ${i} no id twice`).toBe(tail.length);
      const delivered = new Set(tail.map((t) => t.id));
      expect(
        [...expected].filter((id) => !delivered.has(id)),
        `tail ${i} delivered everything that stayed`,
      ).toEqual([]);
    }
    for (const s of stores) await s.close();
  }, 120_000);
  it('a batch with more keys than one transaction may lock takes the store-wide lock, and its deletions hold', async () => {
    const db = await createPgDatabase();
    const [a, b] = [await PostgresStore.open({ url: db, pollMs: 50 }), await PostgresStore.open({ url: db, pollMs: 50 })];
    const ev = (id: number, pubkey: string, kind: number, tags: string[][] = []) =>
      ({ id: hex(id), pubkey, created_at: 1000, kind, tags, content: '', sig: '0'.repeat(128) }) as VerifiedEvent;
    const author = hex(7);
    const mine = Array.from({ length: 5 }, (_, i) => ev(100 + i, author, 1));
    for (const e of mine) expect((await a.write(e)).status).toBe('stored');
    // 1,100 `e` targets (the author's five events among them) in one event: past the per-transaction key bound.
    const targets = [...mine.map((e) => e.id), ...Array.from({ length: 1095 }, (_, i) => hex(10_000 + i))];
    const late = ev(10_000 + 7, author, 1); // one of the targets, sent to the other instance at the same time
    const other = Array.from({ length: 20 }, (_, i) => ev(500 + i, hex(8), 1));
    const [del, lateResult, ...others] = await Promise.all([
      a.write(
        ev(
          900,
          author,
          5,
          targets.map((t) => ['e', t]),
        ),
      ),
      b.write(late),
      ...other.map((e) => b.write(e)),
    ]);
    expect(del.status).toBe('stored');
    expect(others.every((r) => r.status === 'stored')).toBe(true);
    const ids = new Set((await a.pool.query<{ id: string }>('SELECT id FROM events')).rows.map((r) => r.id));
    for (const e of mine) expect(ids.has(e.id)).toBe(false);
    // Either refused (the deletion came first) or stored and then deleted: never left behind.
    expect(ids.has(late.id)).toBe(false);
    expect(['stored', 'rejected']).toContain(lateResult.status);
    expect(Number((await a.pool.query<{ n: number }>('SELECT count(*) AS n FROM deleted_ids')).rows[0]!.n)).toBe(1100);
    await a.close();
    await b.close();
  }, 60_000);
});
