import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import type { NostrEvent, VerifiedEvent } from '../../../shared/event.js';
import { type Key, nowSeconds, signEvent } from '../../helpers/events.js';
import type { TestRelay } from '../../helpers/relay.js';
import type { SqliteStore } from '../../../relay/store/sqlite.js';

/** `n` signed events by the given keys (kind 1 unless told), created over the last hour. */
export function makeEvents(keys: Key[], n: number, tag: string, kind = 1): NostrEvent[] {
  const base = nowSeconds() - 3600;
  return Array.from({ length: n }, (_, i) => signEvent(keys[i % keys.length]!, { kind, created_at: base + (i % 3600), content: `${tag}-${i}` }));
}

/** Stores events straight into a relay's store (seeding; what is under test is replication). */
export async function seed(t: TestRelay, events: NostrEvent[]): Promise<void> {
  await Promise.all(events.map((e) => t.relay.ctx.store.write(e as VerifiedEvent)));
}

/** Every stored event id of a relay (private ones included), sorted. */
export function storedIds(t: TestRelay): string[] {
  const page = (t.relay.ctx.store as SqliteStore).querySeq([{}], 0, undefined, 10_000_000);
  return page.events.map((e) => (JSON.parse(e.raw) as { id: string }).id).sort();
}

/** Replication options that retry quickly (tests only). */
export const fast = { replication: { backoffMs: () => 50 } };

/** The first replicator's counters of a relay. */
export const statsOf = (t: TestRelay) => t.relay.replication.replicators[0]!.stats;

/** A maker of temporary directories for one test file, all removed after it. */
export function tempDirs(prefix: string): () => string {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  return () => {
    const d = mkdtempSync(join(tmpdir(), prefix));
    dirs.push(d);
    return d;
  };
}
