import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, readConfigSources } from '../../relay/config.js';
import { createTracing, tracingOff } from '../../relay/tracing.js';
import { formatTraceparent, makeTraceparentTag } from '../../shared/trace-context.js';
import { makeKey, signEvent } from '../helpers/events.js';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../helpers/otlp-receiver.js';
import { RawClient } from '../helpers/raw-client.js';
import { startRelay, type TestRelay } from '../helpers/relay.js';
import { waitFor } from '../helpers/wait.js';
import type { SendOutcome, WakeSender, WakeTarget } from '../../relay/push/types.js';
import { makeApnsToken, makeRegistrationEvent } from './push/support.js';

const hex = (n: number) => randomBytes(n).toString('hex');
/** A push sender that accepts every wake (the relay needs one configured to take wake registrations). */
const quietApns: WakeSender = { platform: 'apns', send: async (): Promise<SendOutcome> => ({ kind: 'sent' }), close: async () => undefined };

describe('relay tracing over OTLP/HTTP', () => {
  let receiver: OtlpReceiver;
  let relay: TestRelay;
  const logLines: Array<Record<string, unknown>> = [];

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    const sink = new Writable({
      write(chunk, _enc, done) {
        for (const line of String(chunk).split('\n')) if (line) logLines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    const { traceLogFields } = await import('../../relay/tracing.js');
    relay = await startRelay(
      // relay-rooted traces too, so events without a traceparent are traced as well
      { otelTracesExporter: 'otlp', otelExporterOtlpEndpoint: receiver.url, otelServiceName: 'relay-under-test', otelTracesSampler: 'parentbased_always_on' },
      { log: pino({ level: 'info', mixin: traceLogFields }, sink), push: { senders: { apns: quietApns } } },
    );
  });
  afterAll(async () => {
    await relay?.close();
    await receiver?.close();
  });

  const spansOf = (traceId: string) => receiver.spans.filter((s) => s.traceId === traceId);
  const one = (spans: ReceivedSpan[], name: string) => {
    const found = spans.filter((s) => s.name === name);
    expect(found, name).toHaveLength(1);
    return found[0]!;
  };

  it('a public event with a traceparent tag: ingest is a child of the sender span, its steps events on it', async () => {
    const sender = { traceId: hex(16), spanId: hex(8), sampled: true };
    const reader = await RawClient.connect(relay.url);
    const writer = await RawClient.connect(relay.url);
    const key = makeKey();
    await reader.req('live', { authors: [key.pk] });
    const ev = signEvent(key, { content: 'traced', tags: [makeTraceparentTag(sender)] });
    expect(await writer.publish(ev)).toEqual(['OK', ev.id, true, '']);
    await reader.next((f) => f[0] === 'EVENT' && (f[2] as { id: string }).id === ev.id, 'live delivery');
    await relay.relay.ctx.tracing.flush();
    await waitFor(() => spansOf(sender.traceId).length >= 1, 'relay span exported');

    const spans = spansOf(sender.traceId);
    const ingest = one(spans, 'relay.ingest');
    expect(ingest.parentSpanId).toBe(sender.spanId);
    expect(ingest.service).toBe('relay-under-test');
    expect(ingest.attributes).toMatchObject({ 'nostr.event.id': ev.id, 'nostr.event.kind': 1, 'nostr.ok': true });
    // One span per event: the steps are its events, in the order they ended (fan-out runs in the commit).
    expect(ingest.events).toEqual(['verified', 'stored', 'fanned_out']);
    expect(spans).toHaveLength(1);
    // OTLP protobuf by default (OTEL_EXPORTER_OTLP_PROTOCOL), as OpenTelemetry's exporters do.
    expect(receiver.contentTypes.length).toBeGreaterThan(0);
    expect(receiver.contentTypes.every((t) => t.startsWith('application/x-protobuf'))).toBe(true);
    reader.close();
    writer.close();
  });

  it('OTEL_EXPORTER_OTLP_PROTOCOL=http/json exports the same span as OTLP JSON', async () => {
    const json = await startOtlpReceiver();
    const other = await startRelay({
      otelTracesExporter: 'otlp',
      otelExporterOtlpEndpoint: json.url,
      otelExporterOtlpProtocol: 'http/json',
      otelServiceName: 'relay-json',
    });
    try {
      const sender = { traceId: hex(16), spanId: hex(8), sampled: true };
      const ev = signEvent(makeKey(), { tags: [makeTraceparentTag(sender)] });
      const client = await RawClient.connect(other.url);
      expect(await client.publish(ev)).toEqual(['OK', ev.id, true, '']);
      client.close();
      await other.relay.ctx.tracing.flush();
      await waitFor(() => json.spans.some((s) => s.traceId === sender.traceId), 'JSON span');
      const ingest = json.spans.find((s) => s.traceId === sender.traceId)!;
      expect(ingest).toMatchObject({ name: 'relay.ingest', parentSpanId: sender.spanId, service: 'relay-json', events: ['verified', 'stored', 'fanned_out'] });
      expect(ingest.attributes).toMatchObject({ 'nostr.event.id': ev.id, 'nostr.event.kind': 1, 'nostr.ok': true });
      expect(json.contentTypes.every((t) => t.startsWith('application/json'))).toBe(true);
    } finally {
      await other.close();
      await json.close();
    }
  });

  it('an ephemeral event: one ingest span, verified then fanned out (nothing stored)', async () => {
    const sender = { traceId: hex(16), spanId: hex(8), sampled: true };
    const client = await RawClient.connect(relay.url);
    const ev = signEvent(makeKey(), { kind: 20_001, content: 'ephemeral', tags: [makeTraceparentTag(sender)] });
    expect((await client.publish(ev))[2]).toBe(true);
    await relay.relay.ctx.tracing.flush();
    await waitFor(() => spansOf(sender.traceId).length >= 1, 'relay span exported');
    const ingest = one(spansOf(sender.traceId), 'relay.ingest');
    expect(ingest.parentSpanId).toBe(sender.spanId);
    expect(ingest.events).toEqual(['verified', 'fanned_out']);
    client.close();
  });

  it('a gift wrap (DM) never continues the trace its outside names, and its span names no event', async () => {
    const planted = { traceId: hex(16), spanId: hex(8), sampled: true };
    const client = await RawClient.connect(relay.url);
    const wrap = signEvent(makeKey(), { kind: 1059, content: 'opaque', tags: [['p', makeKey().pk], makeTraceparentTag(planted)] });
    const ok = await client.publish(wrap);
    expect(ok[2]).toBe(true);
    await relay.relay.ctx.tracing.flush();
    await waitFor(() => receiver.spans.some((s) => s.name === 'relay.ingest' && s.attributes['nostr.private'] === true), 'DM ingest span');

    expect(spansOf(planted.traceId)).toEqual([]);
    const ingest = receiver.spans.find((s) => s.name === 'relay.ingest' && s.attributes['nostr.private'] === true)!;
    expect(ingest.parentSpanId).toBe('');
    expect(JSON.stringify(ingest.attributes)).not.toContain(wrap.id);
    client.close();
  });

  it('a traceparent that is not W3C trace context is ignored: the ingest starts a trace of its own', async () => {
    const client = await RawClient.connect(relay.url);
    const bad = `00-${'0'.repeat(32)}-${hex(8)}-01`;
    const ev = signEvent(makeKey(), { content: 'bad parent', tags: [['traceparent', bad]] });
    expect((await client.publish(ev))[2]).toBe(true);
    await relay.relay.ctx.tracing.flush();
    await waitFor(() => receiver.spans.some((s) => s.attributes['nostr.event.id'] === ev.id), 'span for the event');
    expect(receiver.spans.find((s) => s.attributes['nostr.event.id'] === ev.id)!.parentSpanId).toBe('');
    client.close();
  });

  it('a sender that did not sample its trace is followed: the relay records nothing for the event', async () => {
    const unsampled = { traceId: hex(16), spanId: hex(8), sampled: false };
    const sampled = { traceId: hex(16), spanId: hex(8), sampled: true };
    const client = await RawClient.connect(relay.url);
    const quiet = signEvent(makeKey(), { tags: [makeTraceparentTag(unsampled)] });
    const loud = signEvent(makeKey(), { tags: [makeTraceparentTag(sampled)] });
    expect((await client.publish(quiet))[2]).toBe(true);
    expect((await client.publish(loud))[2]).toBe(true);
    await relay.relay.ctx.tracing.flush();
    // the sampled one, published after, shows the export has happened
    await waitFor(() => spansOf(sampled.traceId).length > 0, 'sampled spans');
    expect(spansOf(unsampled.traceId)).toEqual([]);
    client.close();
  });

  it("log lines an ingest writes carry its span's trace_id and span_id; other lines meanwhile do not", async () => {
    // A real line of the ingest path: the wake registration handler logs the registration it stored.
    const info = (await (await fetch(relay.httpUrl, { headers: { accept: 'application/nostr+json' } })).json()) as { pubkey: string };
    const agent = makeKey();
    const sender = { traceId: hex(16), spanId: hex(8), sampled: true };
    const reg = makeRegistrationEvent(
      { secretKey: agent.sk },
      info.pubkey,
      { channels: [{ platform: 'apns', token: makeApnsToken(), topic: 'org.example.agent', environment: 'sandbox', mode: 'background' }] },
      undefined,
      [makeTraceparentTag(sender)],
    );
    const client = await RawClient.connect(relay.url);
    expect(await client.publish(reg)).toEqual(['OK', reg.id, true, '']);
    client.close();
    await relay.relay.ctx.tracing.flush();
    await waitFor(() => spansOf(sender.traceId).length >= 1, 'registration span');
    const ingest = one(spansOf(sender.traceId), 'relay.ingest');
    const line = logLines.find((l) => l.msg === 'wake registration' && l.event === reg.id)!;
    expect(line).toMatchObject({ trace_id: sender.traceId, span_id: ingest.spanId });

    // The synchronous part of a traced ingest is its step; a line written while that ingest waits is not.
    const ev = signEvent(makeKey(), { tags: [['traceparent', formatTraceparent({ traceId: hex(16), spanId: hex(8), sampled: true })]] });
    let release = () => {};
    const running = relay.relay.ctx.tracing.traceIngest(ev, false, async () => {
      relay.relay.ctx.log.info({ probe: ev.id }, 'inside');
      await new Promise<void>((r) => (release = r));
    });
    relay.relay.ctx.log.info({ probe: ev.id }, 'meanwhile');
    release();
    await running;
    await relay.relay.ctx.tracing.flush();
    await waitFor(() => receiver.spans.some((s) => s.attributes['nostr.event.id'] === ev.id), 'probe span');
    const span = receiver.spans.find((s) => s.attributes['nostr.event.id'] === ev.id)!;
    const inside = logLines.find((l) => l.probe === ev.id && l.msg === 'inside')!;
    const meanwhile = logLines.find((l) => l.probe === ev.id && l.msg === 'meanwhile')!;
    expect(inside).toMatchObject({ trace_id: span.traceId, span_id: span.spanId });
    expect(meanwhile.trace_id).toBeUndefined();
  });
});

describe('push wake spans', () => {
  it('a wake queued for a traced event, and the push sent for it, are in the sender trace', async () => {
    const receiver = await startOtlpReceiver();
    const sent: WakeTarget[] = [];
    const apns: WakeSender = {
      platform: 'apns',
      send: async (target): Promise<SendOutcome> => {
        sent.push(target);
        return { kind: 'sent' };
      },
      close: async () => undefined,
    };
    const relay = await startRelay({ otelTracesExporter: 'otlp', otelExporterOtlpEndpoint: receiver.url }, { push: { senders: { apns } } });
    try {
      const info = (await (await fetch(relay.httpUrl, { headers: { accept: 'application/nostr+json' } })).json()) as { pubkey: string };
      const agent = makeKey();
      const client = await RawClient.connect(relay.url);
      const reg = makeRegistrationEvent({ secretKey: agent.sk }, info.pubkey, {
        channels: [{ platform: 'apns', token: makeApnsToken(), topic: 'org.example.agent', environment: 'sandbox', mode: 'background' }],
      });
      expect(await client.publish(reg)).toEqual(['OK', reg.id, true, '']);
      const sender = { traceId: hex(16), spanId: hex(8), sampled: true };
      const ev = signEvent(makeKey(), { tags: [['p', agent.pk], makeTraceparentTag(sender)] });
      expect((await client.publish(ev))[2]).toBe(true);
      await waitFor(() => sent.length === 1, 'push sent');
      await waitFor(async () => {
        await relay.relay.ctx.tracing.flush();
        return receiver.spans.some((s) => s.name === 'relay.wake.send');
      }, 'wake send span');
      const spans = receiver.spans.filter((s) => s.traceId === sender.traceId);
      const ingest = spans.find((s) => s.name === 'relay.ingest')!;
      const queued = spans.find((s) => s.name === 'relay.wake.queue')!;
      const push = spans.find((s) => s.name === 'relay.wake.send')!;
      expect(queued.parentSpanId).toBe(ingest.spanId);
      expect(push.parentSpanId).toBe(queued.spanId);
      expect(push.attributes).toMatchObject({ 'push.platform': 'apns', 'push.outcome': 'sent' });
      client.close();
    } finally {
      await relay.close();
      await receiver.close();
    }
  });
});

describe('which events the relay traces (OTEL_TRACES_SAMPLER)', () => {
  it('by default only events whose sender sampled its trace: no span work at all for the rest', async () => {
    const receiver = await startOtlpReceiver();
    const relay = await startRelay({ otelTracesExporter: 'otlp', otelExporterOtlpEndpoint: receiver.url });
    try {
      const tracing = relay.relay.ctx.tracing;
      const untagged = signEvent(makeKey(), { content: 'no trace context' });
      const unsampled = signEvent(makeKey(), { tags: [makeTraceparentTag({ traceId: hex(16), spanId: hex(8), sampled: false })] });
      const sampled = { traceId: hex(16), spanId: hex(8), sampled: true };
      const traced = signEvent(makeKey(), { tags: [makeTraceparentTag(sampled)] });
      const wrap = signEvent(makeKey(), { kind: 1059, content: 'opaque', tags: [['p', makeKey().pk], makeTraceparentTag(sampled)] });
      // Nothing is even started for the first three: the handler takes its untraced path.
      expect(tracing.startIngest(untagged, false)).toBeUndefined();
      expect(tracing.startIngest(unsampled, false)).toBeUndefined();
      expect(tracing.startIngest(wrap, true)).toBeUndefined();
      const client = await RawClient.connect(relay.url);
      for (const ev of [untagged, unsampled, wrap, traced]) expect((await client.publish(ev))[2]).toBe(true);
      await waitFor(async () => {
        await tracing.flush();
        return receiver.spans.some((s) => s.name === 'relay.ingest');
      }, 'the traced event exported');
      expect(new Set(receiver.spans.map((s) => s.traceId))).toEqual(new Set([sampled.traceId]));
      expect(receiver.spans.find((s) => s.name === 'relay.ingest')!.attributes['nostr.event.id']).toBe(traced.id);
      client.close();
    } finally {
      await relay.close();
      await receiver.close();
    }
  });

  it('the operator asks for relay-rooted traces: parentbased_always_on traces every event, a ratio of 0 none of the roots', async () => {
    const receiver = await startOtlpReceiver();
    const on = await startRelay({ otelTracesExporter: 'otlp', otelExporterOtlpEndpoint: receiver.url, otelTracesSampler: 'parentbased_always_on' });
    const none = await startRelay({
      otelTracesExporter: 'otlp',
      otelExporterOtlpEndpoint: receiver.url,
      otelTracesSampler: 'parentbased_traceidratio',
      otelTracesSamplerArg: 0,
      otelServiceName: 'ratio-zero',
    });
    try {
      const ev = signEvent(makeKey(), { content: 'rooted at the relay' });
      expect(none.relay.ctx.tracing.startIngest(ev, false)).toBeUndefined();
      for (const r of [on, none]) {
        const client = await RawClient.connect(r.url);
        expect((await client.publish(ev))[2]).toBe(true);
        client.close();
      }
      await waitFor(async () => {
        await on.relay.ctx.tracing.flush();
        return receiver.spans.some((s) => s.name === 'relay.ingest' && s.attributes['nostr.event.id'] === ev.id);
      }, 'relay-rooted ingest span');
      await none.relay.ctx.tracing.flush();
      expect(receiver.spans.find((s) => s.name === 'relay.ingest')!.parentSpanId).toBe('');
      expect(receiver.spans.filter((s) => s.service === 'ratio-zero')).toEqual([]);
    } finally {
      await on.close();
      await none.close();
      await receiver.close();
    }
  });
});

describe('tracing configuration', () => {
  it('reads the standard OTEL_* variables, off by default', () => {
    expect(loadConfig(readConfigSources({}, [])).otelTracesExporter).toBe('none');
    const c = loadConfig(
      readConfigSources({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SERVICE_NAME: 'edge-relay' }, []),
    );
    expect(c).toMatchObject({ otelTracesExporter: 'otlp', otelExporterOtlpEndpoint: 'http://collector:4318', otelServiceName: 'edge-relay' });
    expect(c.otelTracesSampler).toBe('parentbased_always_off');
    expect(loadConfig(readConfigSources({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25' }, []))).toMatchObject({
      otelTracesSampler: 'parentbased_traceidratio',
      otelTracesSamplerArg: 0.25,
    });
    expect(() => loadConfig({ otelTracesSamplerArg: 2 })).toThrow(expect.objectContaining({ code: 'ROOST_ERR_CONFIG' }));
    expect(() => loadConfig({ otelTracesExporter: 'zipkin' })).toThrow(expect.objectContaining({ code: 'ROOST_ERR_CONFIG' }));
  });

  it('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as given; OTEL_RESOURCE_ATTRIBUTES join the resource, OTEL_SERVICE_NAME wins', async () => {
    const receiver = await startOtlpReceiver();
    const relay = await startRelay({
      otelTracesExporter: 'otlp',
      otelExporterOtlpEndpoint: 'http://127.0.0.1:1', // nothing listens: spans reach the collector only by the full URL
      otelExporterOtlpTracesEndpoint: `${receiver.url}/v1/traces`,
      otelServiceName: 'relay-named',
      otelResourceAttributes: 'deployment.environment=stag%2Cing,service.name=ignored',
    });
    try {
      const sender = { traceId: hex(16), spanId: hex(8), sampled: true };
      const client = await RawClient.connect(relay.url);
      expect((await client.publish(signEvent(makeKey(), { tags: [makeTraceparentTag(sender)] })))[2]).toBe(true);
      client.close();
      await relay.relay.ctx.tracing.flush();
      await waitFor(() => receiver.spans.some((s) => s.traceId === sender.traceId), 'span at the full URL');
      const span = receiver.spans.find((s) => s.traceId === sender.traceId)!;
      expect(span.resource).toMatchObject({ 'service.name': 'relay-named', 'deployment.environment': 'stag,ing' });
    } finally {
      await relay.close();
      await receiver.close();
    }
    expect(() => loadConfig({ otelExporterOtlpTracesEndpoint: 'collector:4318' })).toThrow(expect.objectContaining({ code: 'ROOST_ERR_CONFIG' }));
    expect(() => loadConfig({ otelResourceAttributes: 'no-equals' })).toThrow(expect.objectContaining({ code: 'ROOST_ERR_CONFIG' }));
    expect(loadConfig(readConfigSources({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/t', OTEL_RESOURCE_ATTRIBUTES: 'a=b' }, []))).toMatchObject({
      otelExporterOtlpTracesEndpoint: 'http://c:4318/t',
      otelResourceAttributes: 'a=b',
    });
  });

  it('off: the shared no-op, and nothing reaches a collector', async () => {
    const receiver = await startOtlpReceiver();
    const relay = await startRelay({ otelExporterOtlpEndpoint: receiver.url });
    try {
      expect(relay.relay.ctx.tracing).toBe(tracingOff);
      expect(
        createTracing({
          otelTracesExporter: 'none',
          otelExporterOtlpEndpoint: receiver.url,
          otelExporterOtlpProtocol: 'http/protobuf',
          otelServiceName: 'x',
          otelTracesSampler: 'parentbased_always_on',
          otelTracesSamplerArg: 1,
        }),
      ).toBe(tracingOff);
      const client = await RawClient.connect(relay.url);
      const ev = signEvent(makeKey(), { tags: [makeTraceparentTag({ traceId: hex(16), spanId: hex(8), sampled: true })] });
      expect((await client.publish(ev))[2]).toBe(true);
      client.close();
    } finally {
      await relay.close();
    }
    expect(receiver.contentTypes).toEqual([]);
    await receiver.close();
  });
});
