import { afterEach, describe, expect, it } from 'vitest';
import { createVerifier } from '../../../relay/verify/index.js';
import type { SqliteStore } from '../../../relay/store/sqlite.js';
import { LatencyHistogram } from '../../../relay/operator/latency.js';
import { readMigrations } from '../../../relay/store/migrate.js';
import { makeKey, signEvent } from '../../helpers/events.js';
import { RawClient } from '../../helpers/raw-client.js';
import { startRelay, type TestRelay } from '../../helpers/relay.js';

/** Parses the Prometheus text format into `name{labels}` → value. */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

async function scrape(t: TestRelay, headers: Record<string, string> = {}) {
  const res = await fetch(`${t.httpUrl}/metrics`, { headers });
  return { status: res.status, type: res.headers.get('content-type') ?? '', metrics: parseMetrics(await res.text()) };
}

describe('/metrics', () => {
  let t: TestRelay | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it('exposes the counters, gauges and latency histograms, and they move with traffic', async () => {
    t = await startRelay();
    const before = await scrape(t);
    expect(before.status).toBe(200);
    expect(before.type).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(before.metrics.get('roost_events_stored_total')).toBe(0);
    expect(before.metrics.get('roost_section_enabled{section="wake"}')).toBe(1);
    expect(before.metrics.get('roost_section_enabled{section="mailbox"}')).toBe(1);
    expect([...before.metrics.keys()].some((k) => k.startsWith('process_cpu'))).toBe(true);

    const c = await RawClient.connect(t.url);
    const k = makeKey();
    for (let i = 0; i < 5; i++) await c.publish(signEvent(k, { content: `m${i}` }));
    c.send(['EVENT', { ...signEvent(k), sig: '0'.repeat(128) }]);
    await c.next((f) => f[0] === 'OK' && f[2] === false);
    await c.req('r', { authors: [k.pk] });

    const after = (await scrape(t)).metrics;
    expect(after.get('roost_events_received_total')).toBe(6);
    expect(after.get('roost_events_stored_total')).toBe(5);
    expect(after.get('roost_events_rejected_total')).toBe(1);
    expect(after.get('roost_rejections_total{reason="invalid"}')).toBe(1);
    expect(after.get('roost_stored_events')).toBe(5);
    expect(after.get('roost_connections')).toBe(1);
    expect(after.get('roost_subscriptions')).toBe(1);
    expect(after.get('roost_reqs_total')).toBe(1);
    expect(after.get('roost_database_bytes')).toBeGreaterThan(0);
    expect(after.get('roost_ok_latency_seconds_count')).toBe(6);
    expect(after.get('roost_ok_latency_seconds_bucket{le="+Inf"}')).toBe(6);
    expect(after.get('roost_req_eose_latency_seconds_count')).toBe(1);
    c.close();
  });

  it('includes subsystem sections once they are wired in, and internal errors', async () => {
    const real = await createVerifier({ backend: 'wasm', workers: 0 });
    // Fault injection at an I/O edge: the verifier fails for one marked event.
    t = await startRelay(
      {},
      {
        verifier: {
          backend: 'faulty',
          verify: async (ev) => {
            if (ev.content === 'explode') throw Object.assign(new Error('verifier crashed'), { code: 'ROOST_ERR_TEST' });
            return real.verify(ev);
          },
          close: async () => {},
        },
      },
    );
    t.relay.operator.sources.wake = () => ({ queued: 3, sent: 2, failed: 1, pruned: 4, pendingWakes: 1 });
    t.relay.operator.sources.mailbox = () => ({ undelivered: 12, agents: 2 });
    const c = await RawClient.connect(t.url);
    const boom = signEvent(makeKey(), { content: 'explode' });
    expect((await c.publish(boom)).slice(2)).toEqual([false, 'error: internal error']);
    const m = (await scrape(t)).metrics;
    expect(m.get('roost_section_enabled{section="wake"}')).toBe(1);
    expect(m.get('roost_wake_queued_total')).toBe(3);
    expect(m.get('roost_wake_failed_total')).toBe(1);
    expect(m.get('roost_wake_pruned_total')).toBe(4);
    expect(m.get('roost_wake_pending_wakes')).toBe(1);
    expect(m.get('roost_mailbox_undelivered')).toBe(12);
    expect(m.get('roost_errors_total')).toBe(1);
    const figures = t.relay.operator.sampler.snapshot();
    expect(figures.recentErrors).toEqual([expect.objectContaining({ source: 'handler EVENT', code: 'ROOST_ERR_TEST', message: 'verifier crashed' })]);
    expect(figures.wake).toEqual({ enabled: true, figures: expect.objectContaining({ sent: 2 }) });
    c.close();
  });

  it('requires the metrics token when one is set', async () => {
    t = await startRelay({ metricsToken: 's3cret' });
    expect((await scrape(t)).status).toBe(401);
    expect((await scrape(t, { authorization: 'Bearer wrong' })).status).toBe(401);
    expect((await scrape(t, { authorization: 'Bearer s3cret' })).status).toBe(200);
  });
});

describe('/health and /ready', () => {
  let t: TestRelay | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it('is healthy and ready with every migration applied', async () => {
    t = await startRelay();
    expect(await (await fetch(`${t.httpUrl}/health`)).json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${t.httpUrl}/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', schema: Math.max(...readMigrations().map((m) => m.version)) });
  });

  it('is not ready when a migration is missing, the database is closed, or the relay is shutting down', async () => {
    t = await startRelay();
    const db = (t.relay.ctx.store as SqliteStore).db;
    db.prepare('DELETE FROM schema_migrations WHERE version = 4').run();
    let res = await fetch(`${t.httpUrl}/ready`);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ status: 'not ready', reason: 'migrations not applied: 4' });
    db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (4, '0004_admin.sql', 0)").run();
    expect((await fetch(`${t.httpUrl}/ready`)).status).toBe(200);
    t.relay.operator.beginClose();
    res = await fetch(`${t.httpUrl}/ready`);
    expect(res.status).toBe(503);
    expect(((await res.json()) as { reason: string }).reason).toBe('shutting down');
    expect((await fetch(`${t.httpUrl}/health`)).status).toBe(200);
  });
});

describe('latency histogram', () => {
  it('answers quantiles over a window as bucket upper bounds', () => {
    const h = new LatencyHistogram();
    for (let i = 0; i < 98; i++) h.observe(0.0008);
    h.observe(0.02);
    h.observe(3);
    expect(h.quantile(0.5)).toBe(0.001);
    expect(h.quantile(0.99)).toBe(0.025);
    expect(h.quantile(1)).toBe(5);
    const mark = h.counts();
    expect(h.quantile(0.5, mark)).toBeUndefined();
    h.observe(0.2);
    expect(h.quantile(0.5, mark)).toBe(0.25);
    expect(h.countSince(mark)).toBe(1);
    h.observe(60);
    expect(h.quantile(1, mark)).toBe(Infinity);
  });
});
