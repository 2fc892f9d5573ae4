import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareEventsNewestFirst, type NostrEvent, type VerifiedEvent } from '../../../shared/event.js';
import { matchFilter, type Filter } from '../../../shared/filter.js';
import { buildFilterQuery } from '../../../relay/store/sql-filter.js';
import { SqliteStore } from '../../../relay/store/sqlite.js';

// Newest-first tag queries (the standard way to read a mailbox) walk the (name, value, created_at, seq)
// index and stop at the limit, so a page costs the page, not the mailbox; and the answers stay
// exact where an event fills two index rows: a tag repeated in a database written before repeats
// were folded, or an event found by two of the filter's values.
const hex = (n: number) => n.toString(16).padStart(64, '0');
const AGENT = 'a'.repeat(64);
const OTHER = 'b'.repeat(64);
const NOW = 1_700_000_000;

describe('newest-first tag queries', () => {
  let dir: string;
  let store: SqliteStore;
  const corpus: NostrEvent[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'roost-created-'));
    store = new SqliteStore({ path: join(dir, 'c.db'), now: () => NOW, commitWindowMs: 0, syncMode: 'normal' });
    const writes: Array<Promise<unknown>> = [];
    for (let i = 0; i < 3000; i++) {
      const tags = [['p', i % 3 === 0 ? OTHER : AGENT]];
      if (i % 10 === 0) tags.push(['p', AGENT], ['p', OTHER]); // repeats and both values
      const ev = { id: hex(i + 1), pubkey: hex(900 + (i % 5)), created_at: NOW - Math.floor(i / 4), kind: 1, tags, content: '', sig: '0'.repeat(128) };
      corpus.push(ev);
      writes.push(store.write(ev as VerifiedEvent));
    }
    await Promise.all(writes);
    store.db.exec('ANALYZE');
  });
  afterAll(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const expected = (f: Filter, limit: number) =>
    corpus
      .filter((e) => matchFilter(f, e))
      .sort(compareEventsNewestFirst)
      .slice(0, limit)
      .map((e) => e.id);
  const got = (f: Filter, limit: number) => store.query([f], { limits: [limit] }).map((r) => (JSON.parse(r.raw) as NostrEvent).id);

  it('walks tags_created_seq from the newest entry (or from until) with no scan, no full sort and no tags row read', () => {
    for (const f of [{ '#p': [AGENT] }, { '#p': [AGENT], kinds: [1], until: NOW - 100, since: NOW - 600 }] as Filter[]) {
      const q = buildFilterQuery(f, { now: NOW, order: { by: 'created', limit: 500 } });
      const text = (store.db.prepare(`EXPLAIN QUERY PLAN ${q.sql}`).all(...q.params) as Array<{ detail: string }>).map((r) => r.detail).join('\n');
      // Covering: each match's seq comes from the index, not from a lookup in the tags table.
      expect(text).toMatch(/SEARCH d USING COVERING INDEX tags_created_seq \(name=\? AND value=\?/);
      expect(text, text).not.toMatch(/\bSCAN\b/);
      expect(text, text).not.toMatch(/LIST SUBQUERY|TEMP B-TREE FOR ORDER BY/);
    }
  });

  it('returns exact pages at any depth, for one value and for two', () => {
    for (const f of [{ '#p': [AGENT] }, { '#p': [AGENT, OTHER] }, { '#p': [OTHER], until: NOW - 300 }] as Filter[]) {
      for (const limit of [1, 7, 20, 64, 500]) expect(got(f, limit), JSON.stringify({ f, limit })).toEqual(expected(f, limit));
    }
  });

  it('stays exact over tag rows repeated by an older version of the store', () => {
    // Databases written before repeats were folded hold one row per repeated tag.
    store.db.exec(`INSERT INTO tags (seq, name, value, created_at) SELECT seq, name, value, created_at FROM tags WHERE seq % 7 = 0`);
    for (const f of [{ '#p': [AGENT] }, { '#p': [AGENT, OTHER] }] as Filter[]) {
      for (const limit of [1, 8, 16, 100, 500]) expect(got(f, limit), JSON.stringify({ f, limit })).toEqual(expected(f, limit));
    }
    expect(store.count([{ '#p': [AGENT] }, { '#p': [OTHER] }])).toBe(corpus.length);
  });
});
