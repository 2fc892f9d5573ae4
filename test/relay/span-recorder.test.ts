import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, trace } from '@opentelemetry/api';
import { afterEach, describe, expect, it } from 'vitest';
import { createSpanRecorder, type RecorderOptions, type SpanRecorder } from '../../relay/span-recorder.js';
import { loadConfig, readConfigSources } from '../../relay/config.js';
import { parseOtelPairs } from '../../relay/tracing.js';
import { startOtlpReceiver, type OtlpReceiver } from '../helpers/otlp-receiver.js';
import { waitFor } from '../helpers/wait.js';

const hex = (n: number) => randomBytes(n).toString('hex');

// The relay's own span recorder (relay/span-recorder.ts) against a real OTLP/HTTP receiver on loopback,
// which decodes the bytes itself (test/helpers/otlp-receiver.ts).
describe('span recorder: OTLP export', () => {
  const open: Array<{ rec: SpanRecorder; receiver: OtlpReceiver }> = [];
  afterEach(async () => {
    for (const { rec, receiver } of open.splice(0)) {
      await rec.shutdown();
      await receiver.close();
    }
  });
  const start = async (over: Partial<RecorderOptions> = {}) => {
    const receiver = await startOtlpReceiver();
    const rec = createSpanRecorder({
      url: `${receiver.url}/v1/traces`,
      protocol: 'http/protobuf',
      resource: { 'service.name': 'recorder-under-test' },
      scope: 'test',
      sampler: { name: 'parentbased_always_on', ratio: 1 },
      scheduleDelayMs: 3_600_000, // only a full batch or a flush exports, unless a test says otherwise
      maxQueueSize: 2048,
      maxExportBatchSize: 512,
      exportTimeoutMs: 10_000,
      ...over,
    });
    open.push({ rec, receiver });
    return { rec, receiver };
  };

  for (const protocol of ['http/protobuf', 'http/json'] as const)
    it(`${protocol}: ids, parent links, kind, exact times, attributes of every type, events, status`, async () => {
      const { rec, receiver } = await start({ protocol });
      const parent = { traceId: hex(16), spanId: hex(8), traceFlags: TraceFlags.SAMPLED, isRemote: true };
      const long = 'x'.repeat(20_000); // nested lengths of 1, 2 and 3 bytes
      const before = BigInt(Date.now()) * 1_000_000n;
      const span = rec.tracer.startSpan(
        'relay.ingest',
        { kind: SpanKind.SERVER, attributes: { s: 'é✓', t: true, i: 42, n: -7, d: 1.5, a: ['p', 'q'], long } },
        trace.setSpanContext(ROOT_CONTEXT, parent),
      );
      span.addEvent('verified');
      span.addEvent('stored', { 'nostr.group': 3 });
      span.setAttribute('nostr.ok', false);
      span.setStatus({ code: SpanStatusCode.ERROR });
      const child = rec.tracer.startSpan('relay.wake.queue', { kind: SpanKind.CLIENT }, trace.setSpan(ROOT_CONTEXT, span));
      child.end();
      span.end();
      const after = BigInt(Date.now() + 1) * 1_000_000n;
      span.setAttribute('late', 1); // after end: ignored
      await rec.forceFlush();
      expect(receiver.contentTypes).toEqual([protocol === 'http/json' ? 'application/json' : 'application/x-protobuf']);
      const [c, s] = receiver.spans;
      expect(s).toMatchObject({
        service: 'recorder-under-test',
        name: 'relay.ingest',
        traceId: parent.traceId,
        spanId: span.spanContext().spanId,
        parentSpanId: parent.spanId,
        kind: 2,
        statusCode: 2,
        events: ['verified', 'stored'],
        attributes: { s: 'é✓', t: true, i: 42, n: -7, d: 1.5, a: ['p', 'q'], long, 'nostr.ok': false },
      });
      expect(s!.attributes).not.toHaveProperty('late');
      expect(c).toMatchObject({ name: 'relay.wake.queue', traceId: parent.traceId, parentSpanId: s!.spanId, kind: 3, statusCode: 0 });
      expect(s!.startNs >= before && s!.startNs <= s!.endNs && s!.endNs <= after, `${before} ≤ ${s!.startNs} ≤ ${s!.endNs} ≤ ${after}`).toBe(true);
      expect(s!.spanId).toMatch(/^[0-9a-f]{16}$/);
    });

  it('samplers: a root under traceidratio 0 is not recorded; parent-based follows the parent flag; always_on ignores it', async () => {
    const { rec, receiver } = await start({ sampler: { name: 'parentbased_traceidratio', ratio: 0 } });
    const root = rec.tracer.startSpan('root');
    expect(root.isRecording()).toBe(false);
    root.end();
    const unsampled = trace.setSpanContext(ROOT_CONTEXT, { traceId: hex(16), spanId: hex(8), traceFlags: TraceFlags.NONE });
    expect(rec.tracer.startSpan('child', {}, unsampled).isRecording()).toBe(false);
    const sampled = trace.setSpanContext(ROOT_CONTEXT, { traceId: hex(16), spanId: hex(8), traceFlags: TraceFlags.SAMPLED });
    rec.tracer.startActiveSpan('active', {}, sampled, (s) => {
      expect(s.isRecording()).toBe(true);
      s.end();
    });
    const on = await start({ sampler: { name: 'always_on', ratio: 1 } });
    expect(on.rec.tracer.startSpan('x', {}, unsampled).isRecording()).toBe(true);
    await rec.forceFlush();
    expect(receiver.spans.map((s) => s.name)).toEqual(['active']);
  });

  it('OTEL_BSP_*: a full batch goes out without waiting for the delay; a partial one waits; a full queue drops spans, not the process', async () => {
    const { rec, receiver } = await start({ maxExportBatchSize: 3, maxQueueSize: 8 });
    for (let i = 0; i < 7; i++) rec.tracer.startSpan(`s${i}`).end();
    await waitFor(() => receiver.spans.length >= 6, 'two full batches, unflushed');
    expect(receiver.batches).toEqual([3, 3]);
    await rec.forceFlush();
    expect(receiver.batches).toEqual([3, 3, 1]);

    const full = await start({ maxQueueSize: 2 });
    for (let i = 0; i < 5; i++) full.rec.tracer.startSpan(`q${i}`).end();
    await full.rec.forceFlush();
    expect(full.receiver.spans.map((s) => s.name)).toEqual(['q0', 'q1']);
    expect(full.rec.dropped).toBe(3);

    const timed = await start({ scheduleDelayMs: 20 });
    timed.rec.tracer.startSpan('by-timer').end();
    await waitFor(() => timed.receiver.spans.length === 1, 'the partial batch exported after the schedule delay');
  });

  it('a slow collector: at most two requests at once, the queue bound drops the rest, a flush sends what was held', async () => {
    // A collector that answers only when told to.
    const held: Array<() => void> = [];
    let requests = 0;
    const server = createServer((req, res) => {
      requests++;
      req.resume();
      req.on('end', () => held.push(() => res.writeHead(200).end()));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const rec = createSpanRecorder({
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`,
      protocol: 'http/protobuf',
      resource: {},
      scope: 'test',
      sampler: { name: 'always_on', ratio: 1 },
      scheduleDelayMs: 3_600_000,
      maxQueueSize: 6,
      maxExportBatchSize: 2,
      exportTimeoutMs: 10_000,
    });
    try {
      for (let i = 0; i < 20; i++) {
        rec.tracer.startSpan(`s${i}`).end();
        await new Promise((r) => setImmediate(r));
      }
      await waitFor(() => held.length === 2, 'two requests held');
      expect(requests).toBe(2);
      expect(rec.dropped).toBe(20 - 2 * 2 - 6);
      const flushed = rec.forceFlush();
      for (let answered = 0; answered < 5; answered++) {
        await waitFor(() => held.length > 0, 'a request to answer');
        held.shift()!();
      }
      await flushed;
      expect(requests).toBe(5); // the two held, then the six queued in three
      expect(rec.dropped).toBe(10);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('OTEL_EXPORTER_OTLP_HEADERS reach the collector; a collector that is down costs the spans, nothing else', async () => {
    const { rec, receiver } = await start({ headers: parseOtelPairs('x-api-key=s%3Dcret, x-team = roost') });
    rec.tracer.startSpan('with-headers').end();
    await rec.forceFlush();
    expect(receiver.headers[0]).toMatchObject({ 'x-api-key': 's=cret', 'x-team': 'roost' });

    const gone = await start();
    await gone.receiver.close();
    gone.rec.tracer.startSpan('lost').end();
    await gone.rec.forceFlush();
    expect(gone.rec.dropped).toBe(1);
  });

  it('the OTEL_BSP_* and OTEL_EXPORTER_OTLP_HEADERS variables are read, with the OpenTelemetry defaults', () => {
    expect(loadConfig(readConfigSources({}, []))).toMatchObject({
      otelBspScheduleDelay: 5000,
      otelBspMaxQueueSize: 2048,
      otelBspMaxExportBatchSize: 512,
      otelBspExportTimeout: 30000,
      otelExporterOtlpHeaders: '',
    });
    const c = loadConfig(readConfigSources({ OTEL_BSP_SCHEDULE_DELAY: '100', OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '64', OTEL_EXPORTER_OTLP_HEADERS: 'a=b' }, []));
    expect(c).toMatchObject({ otelBspScheduleDelay: 100, otelBspMaxExportBatchSize: 64, otelExporterOtlpHeaders: 'a=b' });
    expect(() => loadConfig({ otelExporterOtlpHeaders: 'no-equals-sign' })).toThrow(expect.objectContaining({ code: 'ROOST_ERR_CONFIG' }));
  });
});
