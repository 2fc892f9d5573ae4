import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NostrEvent } from '../../shared/event.js';
import { makeKey, signEvent } from '../helpers/events.js';
import { spawnRelay, type RelayProcess } from '../helpers/process.js';
import { RawClient } from '../helpers/raw-client.js';
import { waitFor } from '../helpers/wait.js';

// Issue 25.1: a burst beyond a bucket must get exactly the bucket's content (plus what refills while the burst is
// being answered) and the rest `rate-limited:`, however much of it is still being verified or stored.
const PER_PUBKEY = 1200;
const PER_IP = 600;
const REQS_PER_IP = 300;
const dir = mkdtempSync(join(tmpdir(), 'roost-burst-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('rate limits are exact under a burst', () => {
  let relay: RelayProcess;
  beforeAll(async () => {
    relay = await spawnRelay({
      ROOST_DB: join(dir, 'a.db'),
      ROOST_RATE_LIMIT: 'true',
      ROOST_RATE_EVENTS_PER_PUBKEY: String(PER_PUBKEY),
      ROOST_RATE_EVENTS_PER_IP: '100000',
      ROOST_RATE_REQS_PER_IP: String(REQS_PER_IP),
    });
  });
  afterAll(async () => {
    relay.child.kill('SIGTERM');
    await relay.exited;
  });

  /** Sends every event at once on one connection; returns the OK answers and the refill the elapsed time allows. */
  async function burst(events: NostrEvent[], perMinute: number): Promise<{ accepted: number; reasons: string[]; refill: number }> {
    const c = await RawClient.connect(relay.url);
    const start = performance.now();
    for (const e of events) c.send(['EVENT', e]);
    await waitFor(() => c.of('OK').length === events.length, 'every OK', 30_000);
    const refill = Math.floor(((performance.now() - start) * perMinute) / 60_000);
    const oks = c.of('OK');
    c.close();
    return { accepted: oks.filter((f) => f[2] === true).length, reasons: oks.filter((f) => f[2] === false).map((f) => f[3] as string), refill };
  }

  it(`one key sending ${PER_PUBKEY + 100} events at once gets ${PER_PUBKEY} (+ refill) accepted`, async () => {
    const key = makeKey();
    const events = Array.from({ length: PER_PUBKEY + 100 }, (_, i) => signEvent(key, { content: `burst ${i}` }));
    const r = await burst(events, PER_PUBKEY);
    expect(r.accepted).toBeGreaterThanOrEqual(PER_PUBKEY);
    expect(r.accepted).toBeLessThanOrEqual(PER_PUBKEY + r.refill);
    expect(r.reasons.length).toBe(events.length - r.accepted);
    for (const reason of r.reasons) expect(reason).toMatch(/^rate-limited: .*author/);
  });

  it('ephemeral events are charged to their author too', async () => {
    const key = makeKey();
    const events = Array.from({ length: PER_PUBKEY + 100 }, (_, i) => signEvent(key, { kind: 20001, content: `e${i}` }));
    const r = await burst(events, PER_PUBKEY);
    expect(r.accepted).toBeGreaterThanOrEqual(PER_PUBKEY);
    expect(r.accepted).toBeLessThanOrEqual(PER_PUBKEY + r.refill);
    for (const reason of r.reasons) expect(reason).toMatch(/^rate-limited: /);
  });

  it('forged events under a victim key cost the victim nothing, even in flight with its own burst', async () => {
    const victim = makeKey();
    const forged = Array.from({ length: 200 }, (_, i) => ({ ...signEvent(makeKey(), { content: `forged ${i}` }), pubkey: victim.pk }));
    const own = Array.from({ length: PER_PUBKEY }, (_, i) => signEvent(victim, { content: `own ${i}` }));
    // The forgeries go first, so they hold the victim's tokens while they are verified; the victim's burst follows.
    const f = await burst(forged, PER_PUBKEY);
    expect(f.accepted).toBe(0);
    const r = await burst(own, PER_PUBKEY);
    expect(r.accepted).toBe(PER_PUBKEY);
  });

  it(`${REQS_PER_IP + 50} REQs at once from one address: ${REQS_PER_IP} (+ refill) answered, the rest CLOSED rate-limited:`, async () => {
    const c = await RawClient.connect(relay.url);
    const n = REQS_PER_IP + 50;
    const start = performance.now();
    // Each REQ is closed right after it is sent, so the per-connection subscription cap does not interfere.
    for (let i = 0; i < n; i++) {
      c.send(['REQ', `s${i}`, { kinds: [30999], limit: 1 }]);
      c.send(['CLOSE', `s${i}`]);
    }
    await waitFor(() => c.of('EOSE').length + c.of('CLOSED').length >= n, 'every answer', 30_000);
    const refill = Math.floor(((performance.now() - start) * REQS_PER_IP) / 60_000);
    const closed = c.of('CLOSED');
    const answered = c.of('EOSE').length;
    expect(answered).toBeGreaterThanOrEqual(REQS_PER_IP);
    expect(answered).toBeLessThanOrEqual(REQS_PER_IP + refill);
    for (const f of closed) expect(f[2]).toMatch(/^rate-limited: /);
    c.close();
  });

  it(`${PER_IP + 100} events from fresh keys on one address: ${PER_IP} (+ refill) accepted`, async () => {
    const ipRelay = await spawnRelay({ ROOST_DB: join(dir, 'b.db'), ROOST_RATE_LIMIT: 'true', ROOST_RATE_EVENTS_PER_IP: String(PER_IP) });
    try {
      const events = Array.from({ length: PER_IP + 100 }, (_, i) => signEvent(makeKey(), { content: `ip ${i}` }));
      const c = await RawClient.connect(ipRelay.url);
      const start = performance.now();
      for (const e of events) c.send(['EVENT', e]);
      await waitFor(() => c.of('OK').length === events.length, 'every OK', 30_000);
      const refill = Math.floor(((performance.now() - start) * PER_IP) / 60_000);
      const oks = c.of('OK');
      const accepted = oks.filter((f) => f[2] === true).length;
      expect(accepted).toBeGreaterThanOrEqual(PER_IP);
      expect(accepted).toBeLessThanOrEqual(PER_IP + refill);
      for (const f of oks.filter((f) => f[2] === false)) expect(f[3]).toMatch(/^rate-limited: .*address/);
      c.close();
    } finally {
      ipRelay.child.kill('SIGTERM');
      await ipRelay.exited;
    }
  });
});
