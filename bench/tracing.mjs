#!/usr/bin/env node
// What the OpenTelemetry JS SDK itself costs per traced event, outside the relay: CPU time to create and
// end the span of one stored event (relay.ingest with its verified, stored and fanned_out events, the
// relay's shape) and, for comparison, the four spans of the earlier shape (relay.ingest with verify,
// store and fan-out children), with the batch span processor, and with it exporting OTLP/HTTP protobuf
// (the relay's default) or JSON to a collector in another process (which keeps nothing). See
// docs/performance.md ("Tracing"). Then the same with the relay's own recorder (relay/span-recorder.ts),
// which the relay uses instead of the SDK.
//
//   npm run build && node bench/tracing.mjs [--events N]
import { spawn } from 'node:child_process';
import { ROOT_CONTEXT, SpanKind, trace } from '@opentelemetry/api';
import { OTLPTraceExporter as OTLPJsonTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OTLPProtobufTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { AlwaysOnSampler, BatchSpanProcessor, NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { createSpanRecorder } from '../dist/relay/span-recorder.js';

const i = process.argv.indexOf('--events');
const N = i > 0 ? Number(process.argv[i + 1]) : 40_000;

async function startSink() {
  const code = `const s=require('http').createServer((q,r)=>{q.resume();const p=String(q.headers['content-type']).startsWith('application/x-protobuf');q.on('end',()=>r.writeHead(200,{'content-type':p?'application/x-protobuf':'application/json'}).end(p?'':'{}'))});s.listen(0,'127.0.0.1',()=>console.log(s.address().port))`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((r) => child.stdout.once('data', (d) => r(Number(String(d).trim()))));
  return { url: `http://127.0.0.1:${port}/v1/traces`, stop: () => child.kill() };
}

/** The relay's own recorder (relay/span-recorder.ts; `npm run build` first), same queue and batch sizes. */
function recorder(url, protocol) {
  return createSpanRecorder({
    url: url ?? 'http://127.0.0.1:9/v1/traces',
    protocol: protocol ?? 'http/protobuf',
    resource: { 'service.name': 'bench' },
    scope: 'bench',
    sampler: { name: 'always_on', ratio: 1 },
    scheduleDelayMs: 5000,
    // without a collector, an ended span is dropped at once (create and end only, as the SDK's discarding exporter)
    maxQueueSize: url ? 4 * N : 0,
    maxExportBatchSize: 2048,
    exportTimeoutMs: 30_000,
  });
}

async function measure(exporter, shape) {
  // A queue that holds a whole round, so nothing is dropped and every span is paid for.
  const provider =
    exporter.tracer !== undefined
      ? exporter
      : new NodeTracerProvider({
          sampler: new AlwaysOnSampler(),
          spanProcessors: [new BatchSpanProcessor(exporter, { maxQueueSize: 4 * N, maxExportBatchSize: 2048 })],
        });
  const tracer = exporter.tracer ?? provider.getTracer('bench');
  const id = 'a'.repeat(64);
  const t0 = process.cpuUsage();
  for (let n = 0; n < N; n++) {
    const span = tracer.startSpan('relay.ingest', { kind: SpanKind.SERVER, attributes: { 'nostr.event.id': id, 'nostr.event.kind': 1 } }, ROOT_CONTEXT);
    if (shape === 'events') for (const name of ['verified', 'stored', 'fanned_out']) span.addEvent(name);
    else {
      const ctx = trace.setSpan(ROOT_CONTEXT, span);
      for (const name of ['relay.verify', 'relay.store', 'relay.fan_out']) tracer.startSpan(name, undefined, ctx).end();
    }
    span.setAttribute('nostr.ok', true);
    span.end();
    if (n % 200 === 0) await new Promise((r) => setImmediate(r));
  }
  await provider.forceFlush();
  const u = process.cpuUsage(t0);
  await provider.shutdown();
  return (u.user + u.system) / N;
}

const sink = await startSink();
try {
  const discard = { export: (_s, done) => done({ code: 0 }), shutdown: async () => {}, forceFlush: async () => {} };
  for (const [shape, label] of [
    ['events', '1 span with 3 events'],
    ['spans', '4 spans (the earlier shape)'],
  ]) {
    const made = await measure(discard, shape);
    const proto = await measure(new OTLPProtobufTraceExporter({ url: sink.url }), shape);
    const json = await measure(new OTLPJsonTraceExporter({ url: sink.url }), shape);
    console.log(
      `SDK, ${label} per event, ${N} events: ${made.toFixed(1)} µs/event to create and end; exporting ${proto.toFixed(1)} µs/event as OTLP protobuf, ${json.toFixed(1)} as JSON`,
    );
  }
  for (const [shape, label] of [
    ['events', '1 span with 3 events'],
    ['spans', '4 spans'],
  ]) {
    const made = await measure(recorder(), shape);
    const proto = await measure(recorder(sink.url, 'http/protobuf'), shape);
    const json = await measure(recorder(sink.url, 'http/json'), shape);
    console.log(
      `Roost's recorder, ${label} per event, ${N} events: ${made.toFixed(1)} µs/event to create and end; exporting ${proto.toFixed(1)} µs/event as OTLP protobuf, ${json.toFixed(1)} as JSON`,
    );
  }
} finally {
  sink.stop();
}
