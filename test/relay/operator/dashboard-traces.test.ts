import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../relay/config.js';
import { makeTraceparentTag } from '../../../shared/trace-context.js';
import { makeKey, signEvent } from '../../helpers/events.js';
import { startOtlpReceiver, type OtlpReceiver } from '../../helpers/otlp-receiver.js';
import { RawClient } from '../../helpers/raw-client.js';
import { startRelay, type TestRelay } from '../../helpers/relay.js';

const hex = (n: number) => randomBytes(n).toString('hex');
const TOKEN = 'trace-dashboard-token';
const TEMPLATE = 'https://jaeger.example/trace/{traceId}';

// The dashboard's link from an event to its trace: /dashboard/traces (recently traced events and the
// trace UI template) and /dashboard/traces/<event id> (one stored event's trace).
describe('dashboard: events linked to their traces', () => {
  let receiver: OtlpReceiver;
  let relay: TestRelay;
  const get = (path: string, token = TOKEN) => fetch(`${relay.httpUrl}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    relay = await startRelay({ otelTracesExporter: 'otlp', otelExporterOtlpEndpoint: receiver.url, traceUrl: TEMPLATE, adminToken: TOKEN });
  });
  afterAll(async () => {
    await relay?.close();
    await receiver?.close();
  });

  it('a traced public event is listed with its trace id and looked up by id; a DM never shows the trace its outside names', async () => {
    const sender = { traceId: hex(16), spanId: hex(8), sampled: true };
    const traced = signEvent(makeKey(), { content: 'traced', tags: [makeTraceparentTag(sender)] });
    const plain = signEvent(makeKey(), { content: 'not traced' });
    const wrap = signEvent(makeKey(), { kind: 1059, content: 'opaque', tags: [['p', makeKey().pk], makeTraceparentTag({ ...sender, traceId: hex(16) })] });
    const client = await RawClient.connect(relay.url);
    for (const ev of [traced, plain, wrap]) expect((await client.publish(ev))[2]).toBe(true);
    client.close();

    const list = (await (await get('/dashboard/traces')).json()) as { urlTemplate: string; exporting: boolean; recent: unknown[] };
    expect(list).toEqual({ urlTemplate: TEMPLATE, exporting: true, recent: [{ eventId: traced.id, kind: 1, traceId: sender.traceId }] });

    expect(await (await get(`/dashboard/traces/${traced.id}`)).json()).toEqual({ eventId: traced.id, kind: 1, traceId: sender.traceId });
    expect(await (await get(`/dashboard/traces/${plain.id}`)).json()).toEqual({ eventId: plain.id, kind: 1, traceId: null });
    expect(await (await get(`/dashboard/traces/${wrap.id}`)).json()).toEqual({ eventId: wrap.id, kind: 1059, traceId: null });
  });

  it('refuses without the token, a malformed id with 400, an unknown one with 404', async () => {
    expect((await get('/dashboard/traces', '')).status).toBe(401);
    expect((await get(`/dashboard/traces/${hex(32)}`, 'wrong')).status).toBe(401);
    const bad = await get('/dashboard/traces/NOT-AN-ID');
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/64 lowercase hex/);
    expect((await get(`/dashboard/traces/${hex(32)}`)).status).toBe(404);
  });

  it('ROOST_TRACE_URL must be an http(s) URL with {traceId}', () => {
    expect(loadConfig({}).traceUrl).toBe('');
    expect(() => loadConfig({ traceUrl: 'https://jaeger.example/trace/' })).toThrow(expect.objectContaining({ code: 'ROOST_ERR_CONFIG' }));
    expect(() => loadConfig({ traceUrl: 'javascript:alert(1)//{traceId}' })).toThrow(expect.objectContaining({ code: 'ROOST_ERR_CONFIG' }));
  });
});
