import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Database } from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Filter } from '../../../shared/filter.js';
import { buildFilterQuery } from '../../../relay/store/sql-filter.js';
import { openDatabase } from '../../../relay/store/sqlite.js';

// Paging a mailbox by sequence number must be an index range at any depth, never a scan of the
// events table or a sort of the whole mailbox. The plan is checked on a database with realistic
// statistics (ANALYZE over a few thousand rows), so the planner's choice is the one it would make.
const hex = (n: number) => n.toString(16).padStart(64, '0');
const AGENT = 'a'.repeat(64);
const OTHER = 'b'.repeat(64);
const NOW = 1_700_000_000;

function plan(db: Database, f: Filter, after: number, viewer = { pubkeys: [AGENT], privateKinds: [4, 1059] }): string[] {
  const q = buildFilterQuery(f, { now: NOW, viewer, order: { by: 'seq', after, limit: 501 } });
  return (db.prepare(`EXPLAIN QUERY PLAN ${q.sql}`).all(...q.params) as Array<{ detail: string }>).map((r) => r.detail);
}

describe('sequence paging query plans', () => {
  let dir: string;
  let db: Database;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'roost-plan-'));
    db = openDatabase(join(dir, 'plan.db'), 'normal');
    const ins = db.prepare('INSERT INTO events (id, pubkey, created_at, kind, d_tag, expires_at, raw) VALUES (?, ?, ?, ?, NULL, NULL, ?)');
    const tag = db.prepare('INSERT INTO tags (seq, name, value, created_at) VALUES (?, ?, ?, ?)');
    db.transaction(() => {
      for (let i = 0; i < 5000; i++) {
        const seq = Number(ins.run(hex(i), hex(i % 40), NOW + i, i % 3 === 0 ? 4 : 1, '{}').lastInsertRowid);
        tag.run(seq, 'p', i % 2 ? AGENT : hex(1000 + (i % 97)), NOW + i);
        tag.run(seq, 'e', hex(2000 + i), NOW + i);
      }
    })();
    db.exec('ANALYZE');
  });
  afterAll(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const cases: Array<[string, Filter]> = [
    ['#p', { '#p': [AGENT] }],
    ['#p + kinds', { '#p': [AGENT], kinds: [4, 1059] }],
    ['#p + authors + since', { '#p': [AGENT], authors: [hex(3)], since: NOW }],
    ['#p with two values', { '#p': [AGENT, OTHER] }],
  ];
  it.each(cases)('%s + seq range walks tags_value_seq from the cursor, with no scan and no full sort', (_name, f) => {
    for (const after of [0, 2500, 4990]) {
      const lines = plan(db, f, after);
      const text = lines.join('\n');
      expect(text).toMatch(/SEARCH d USING COVERING INDEX tags_value_seq \(name=\? AND value=\? AND seq>\?\)/);
      expect(text, text).not.toMatch(/\bSCAN (e|t|d|events|tags)\b/);
      expect(text).not.toMatch(/LIST SUBQUERY/);
      if (!f['#p'] || f['#p'].length === 1) expect(text, text).not.toMatch(/TEMP B-TREE/);
    }
  });

  it('returns the same page as a naive walk, at any depth', () => {
    for (const after of [0, 1234, 4000]) {
      const q = buildFilterQuery({ '#p': [AGENT] }, { now: NOW, order: { by: 'seq', after, limit: 100 } });
      const got = (db.prepare(q.sql).all(...q.params) as Array<{ seq: number }>).map((r) => r.seq);
      const naive = db.prepare("SELECT DISTINCT seq FROM tags WHERE name = 'p' AND value = ? AND seq > ? ORDER BY seq LIMIT 100").pluck().all(AGENT, after);
      expect(got).toEqual(naive);
    }
  });

  it('the private-inbox rule probes per row instead of materialising the reader inbox', () => {
    const text = plan(db, { kinds: [1, 4] }, 0).join('\n');
    expect(text).toMatch(/SEARCH e USING INTEGER PRIMARY KEY \(rowid>\?\)/);
    expect(text).not.toMatch(/LIST SUBQUERY/);
  });
});
