import { context, ROOT_CONTEXT, type Context, type Span, SpanKind, SpanStatusCode, type Tracer, TraceFlags, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import type { NostrEvent } from '../shared/event.js';
import { getTraceparent } from '../shared/trace-context.js';
import type { RelayConfig } from './config.js';
import type { WakeTracing } from './push/wake.js';

/** Runs one step of the ingest pipeline, as a child span when the event is traced. */
export type IngestStep = <T>(name: string, fn: () => T) => T;

/** The spans of one EVENT frame: `relay.ingest` and its steps. */
export interface IngestTrace {
  readonly step: IngestStep;
  /**
   * Runs the write in a `relay.store` span and remembers this ingest until the commit, so the wake
   * queue and the fan-out inside and after it join the trace. The write itself runs outside any span:
   * the group commit it schedules serves other events too and must not inherit this one's context.
   */
  store<T>(eventId: string, write: () => Promise<T>): Promise<T>;
  /** Records the OK answer on the ingest span. */
  outcome(accepted: boolean, reason: string): void;
}

/**
 * Relay tracing (docs/observability.md). Off unless `OTEL_TRACES_EXPORTER=otlp`: then `enabled` is
 * false, nothing is allocated per event and the handlers take their untraced path.
 */
export interface RelayTracing extends WakeTracing {
  readonly enabled: boolean;
  /**
   * Runs `fn` inside a `relay.ingest` span. A public event's `traceparent` tag makes it a child of
   * the sender's span; a private event (DM, gift wrap) always starts a trace of its own.
   */
  traceIngest<T>(event: NostrEvent, isPrivate: boolean, fn: (t: IngestTrace) => Promise<T>): Promise<T>;
  /** Runs the after-commit work (fan-out, saved hooks) in a `relay.fan_out` span of the event's ingest. */
  traceCommitted<T>(eventId: string, fn: () => T): T;
  /** Exports every ended span now. */
  flush(): Promise<void>;
  /** Flushes and stops the exporter. */
  close(): Promise<void>;
}

const untraced: IngestStep = (_name, fn) => fn();

/** The tracing that does nothing: handlers check `enabled` once per frame and skip everything else. */
export const tracingOff: RelayTracing = Object.freeze({
  enabled: false,
  traceIngest: (_e: NostrEvent, _p: boolean, fn: (t: IngestTrace) => Promise<unknown>) =>
    fn({ step: untraced, store: <T>(_id: string, write: () => Promise<T>) => write(), outcome: () => undefined }),
  wakeQueued: () => undefined,
  wakeSend: () => () => undefined,
  traceCommitted: <T>(_id: string, fn: () => T) => fn(),
  flush: async () => undefined,
  close: async () => undefined,
}) as RelayTracing;

let contextManagerSet = false;

/**
 * Builds the relay's tracing from its config: OTLP over HTTP (JSON) to `OTEL_EXPORTER_OTLP_ENDPOINT`
 * `/v1/traces`, batched. The process-wide async context manager is installed once, so log lines
 * written inside a span carry its ids ({@link traceLogFields}).
 */
export function createTracing(config: Pick<RelayConfig, 'otelTracesExporter' | 'otelExporterOtlpEndpoint' | 'otelServiceName'>): RelayTracing {
  if (config.otelTracesExporter === 'none') return tracingOff;
  const base = config.otelExporterOtlpEndpoint.replace(/\/+$/, '');
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': config.otelServiceName }),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: `${base}/v1/traces` }))],
  });
  if (!contextManagerSet) {
    contextManagerSet = context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  }
  return createTracingWith(provider.getTracer('roost-relay'), provider);
}

/** Tracing over a given tracer (tests pass one with an in-process exporter). */
export function createTracingWith(tracer: Tracer, provider: { forceFlush(): Promise<void>; shutdown(): Promise<void> }): RelayTracing {
  const pending = new Map<string, Context>();
  // seq → context of the queued wake, so the push sent later (once, for however many events) joins the
  // trace of the event that queued it. Bounded: a wake older than this many queued ones starts its own trace.
  const wakes = new Map<number, Context>();
  const maxWakes = 10_000;
  return {
    enabled: true,
    async traceIngest(event, isPrivate, fn) {
      const parent = isPrivate ? undefined : getTraceparent(event.tags);
      const parentCtx = parent
        ? trace.setSpanContext(ROOT_CONTEXT, {
            traceId: parent.traceId,
            spanId: parent.spanId,
            traceFlags: parent.sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
            isRemote: true,
          })
        : ROOT_CONTEXT;
      // A private event's id and kind stay off its span too: only that one arrived, and its size.
      const span = tracer.startSpan(
        'relay.ingest',
        { kind: SpanKind.SERVER, attributes: isPrivate ? { 'nostr.private': true } : { 'nostr.event.id': event.id, 'nostr.event.kind': event.kind } },
        parentCtx,
      );
      const spanCtx = trace.setSpan(parentCtx, span);
      const step: IngestStep = (name, run) => {
        const child = tracer.startSpan(name, undefined, spanCtx);
        return context.with(trace.setSpan(spanCtx, child), () => endAfter(child, run));
      };
      const t: IngestTrace = {
        step,
        store(eventId, write) {
          pending.set(eventId, spanCtx);
          const child = tracer.startSpan('relay.store', undefined, spanCtx);
          return endAfter(child, () => context.with(ROOT_CONTEXT, write));
        },
        outcome(accepted, reason) {
          span.setAttribute('nostr.ok', accepted);
          if (reason) span.setAttribute('nostr.reason', reason.split(':')[0] ?? '');
        },
      };
      try {
        return await context.with(spanCtx, () => fn(t));
      } catch (err) {
        span.recordException(err as Error);
        span.setStatus({ code: SpanStatusCode.ERROR });
        throw err;
      } finally {
        pending.delete(event.id);
        span.end();
      }
    },
    wakeQueued(eventId, seq) {
      const parent = pending.get(eventId);
      if (!parent) return;
      const span = tracer.startSpan('relay.wake.queue', { attributes: { 'nostr.seq': seq } }, parent);
      span.end();
      wakes.delete(seq);
      wakes.set(seq, trace.setSpan(parent, span));
      if (wakes.size > maxWakes) wakes.delete(wakes.keys().next().value as number);
    },
    wakeSend(seq, platform) {
      const span = tracer.startSpan(
        'relay.wake.send',
        { kind: SpanKind.CLIENT, attributes: { 'push.platform': platform, 'nostr.seq': seq } },
        wakes.get(seq) ?? ROOT_CONTEXT,
      );
      return (outcome) => {
        span.setAttribute('push.outcome', outcome);
        if (outcome === 'sent') wakes.delete(seq);
        span.end();
      };
    },
    traceCommitted(eventId, fn) {
      const parent = pending.get(eventId);
      if (!parent) return fn();
      pending.delete(eventId);
      const span = tracer.startSpan('relay.fan_out', undefined, parent);
      return context.with(trace.setSpan(parent, span), () => endAfter(span, fn));
    },
    flush: () => provider.forceFlush(),
    close: () => provider.shutdown(),
  };
}

/** Ends a span when `fn` returns or its promise settles, marking errors. */
function endAfter<T>(span: Span, fn: () => T): T {
  const fail = (err: unknown) => {
    span.recordException(err as Error);
    span.setStatus({ code: SpanStatusCode.ERROR });
    span.end();
    throw err;
  };
  let out: T;
  try {
    out = fn();
  } catch (err) {
    return fail(err);
  }
  if (out instanceof Promise) {
    return out.then((v) => {
      span.end();
      return v;
    }, fail) as T;
  }
  span.end();
  return out;
}

/** pino mixin: `trace_id` and `span_id` of the active span, if any (nothing when tracing is off). */
export function traceLogFields(): Record<string, string> {
  const span = trace.getSpan(context.active());
  if (!span) return {};
  const c = span.spanContext();
  return { trace_id: c.traceId, span_id: c.spanId };
}
