import { context, ROOT_CONTEXT, type Context, type Span, SpanKind, SpanStatusCode, type Tracer, TraceFlags, trace } from '@opentelemetry/api';
import type { NostrEvent } from '../shared/event.js';
import { getTraceparent } from '../shared/trace-context.js';
import type { RelayConfig } from './config.js';
import type { WakeTracing } from './push/wake.js';
import { createSpanRecorder } from './span-recorder.js';

/** A step of the ingest pipeline, recorded as an event on `relay.ingest` when it ends. */
export type IngestStep = 'verified' | 'kind_handled' | 'stored' | 'fanned_out';

/**
 * The span of one EVENT frame: `relay.ingest`, its steps as span events (one span per event, not one
 * per step: a span costs the SDK several times what an event on it does, see docs/performance.md).
 */
export interface IngestTrace {
  /** Records that a step ended (a span event with its time). */
  mark(step: IngestStep): void;
  /**
   * Runs the write and remembers this ingest until the commit, so the wake queue and the fan-out
   * inside and after it join the trace (the group commit serves other events too: it is told which
   * of its events are traced, it inherits no context).
   */
  store<T>(eventId: string, write: () => Promise<T>): Promise<T>;
  /** Records the OK answer on the ingest span. */
  outcome(accepted: boolean, reason: string): void;
  /**
   * Runs the synchronous `fn` as a step of this ingest: pino lines it writes carry the span's
   * `trace_id` and `span_id` ({@link traceLogFields}). Synchronous only: what `fn` leaves for later
   * (after an await) is outside it.
   */
  within<T>(fn: () => T): T;
  /** Runs the whole ingest, then ends the span (recording an exception that escapes). */
  run<T>(fn: () => Promise<T>): Promise<T>;
}

/** Which events the relay records spans for: an `OTEL_TRACES_SAMPLER` value (relay/config.ts). */
export type TraceSamplerName = RelayConfig['otelTracesSampler'];

/**
 * Relay tracing (docs/observability.md). Off unless `OTEL_TRACES_EXPORTER=otlp`: then `enabled` is
 * false, nothing is allocated per event and the handlers take their untraced path. On, an event is
 * traced only when {@link RelayTracing.startIngest} says so: by default only an event whose sender
 * sampled its trace (`parentbased_always_off`); the operator asks for relay-rooted traces with the sampler.
 */
export interface RelayTracing extends WakeTracing {
  readonly enabled: boolean;
  /**
   * The spans of one EVENT frame, or undefined when nothing is to be recorded for it (then the
   * handler takes its untraced path: no span, no context, no closure). A public event's
   * `traceparent` tag makes `relay.ingest` a child of the sender's span; a private event (DM, gift
   * wrap) never continues a trace its outside names.
   */
  startIngest(event: NostrEvent, isPrivate: boolean): IngestTrace | undefined;
  /**
   * Runs `fn` with a `relay.ingest` span (or untraced, see {@link startIngest}); its synchronous
   * part is a step of the ingest ({@link IngestTrace.within}).
   */
  traceIngest<T>(event: NostrEvent, isPrivate: boolean, fn: (t: IngestTrace | undefined) => Promise<T>): Promise<T>;
  /** Runs the after-commit work (fan-out, saved hooks), then marks `fanned_out` on the event's ingest span. */
  traceCommitted<T>(eventId: string, fn: () => T): T;
  /** Whether the event stored under this id is being traced (its commit is awaited in a span). */
  isPending(eventId: string): boolean;
  /** The public events traced most recently, newest first (at most {@link RECENT_TRACES}; never a private one). */
  recentTraces(): TracedEvent[];
  /** The trace a recently traced public event's spans are in, if it is still remembered. */
  getTraceId(eventId: string): string | undefined;
  /** Exports every ended span now. */
  flush(): Promise<void>;
  /** Flushes and stops the exporter. */
  close(): Promise<void>;
}

/** A public event the relay traced, for the dashboard's link to its trace. */
export interface TracedEvent {
  eventId: string;
  kind: number;
  traceId: string;
}

/** How many traced events the relay remembers for the dashboard. */
export const RECENT_TRACES = 100;

/** The tracing that does nothing: handlers check `enabled` once per frame and skip everything else. */
export const tracingOff: RelayTracing = Object.freeze({
  enabled: false,
  startIngest: () => undefined,
  traceIngest: (_e: NostrEvent, _p: boolean, fn: (t: IngestTrace | undefined) => Promise<unknown>) => fn(undefined),
  wakeQueued: () => undefined,
  wakeSend: () => () => undefined,
  traceCommitted: <T>(_id: string, fn: () => T) => fn(),
  isPending: () => false,
  recentTraces: () => [],
  getTraceId: () => undefined,
  flush: async () => undefined,
  close: async () => undefined,
}) as RelayTracing;

/** The tracing settings of the relay's config (the batch and header settings have their defaults when left out). */
export type TracingConfig = Pick<
  RelayConfig,
  'otelTracesExporter' | 'otelExporterOtlpEndpoint' | 'otelExporterOtlpProtocol' | 'otelServiceName' | 'otelTracesSampler' | 'otelTracesSamplerArg'
> &
  Partial<
    Pick<
      RelayConfig,
      | 'otelExporterOtlpTracesEndpoint'
      | 'otelResourceAttributes'
      | 'otelExporterOtlpHeaders'
      | 'otelBspScheduleDelay'
      | 'otelBspMaxQueueSize'
      | 'otelBspMaxExportBatchSize'
      | 'otelBspExportTimeout'
    >
  >;

/** `OTEL_EXPORTER_OTLP_HEADERS` and `OTEL_RESOURCE_ATTRIBUTES`: `key=value` pairs, comma-separated, values URL-encoded. */
export function parseOtelPairs(value: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of value.split(',')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) continue;
    out[pair.slice(0, eq).trim()] = decodeURIComponent(pair.slice(eq + 1).trim());
  }
  return out;
}

/**
 * Builds the relay's tracing from its config: spans recorded by the relay's light recorder behind the
 * OpenTelemetry API (relay/span-recorder.ts: the SDK's span and export cost the relay more than the
 * 10 % the issue allows when every event is traced, docs/performance.md "Tracing"), exported in
 * batches over OTLP/HTTP to `OTEL_EXPORTER_OTLP_ENDPOINT` `/v1/traces` as protobuf (the default) or
 * JSON (`OTEL_EXPORTER_OTLP_PROTOCOL`), with the standard `OTEL_BSP_*` batch settings. No async
 * context manager is installed: the relay passes its spans explicitly, and an `AsyncLocalStorage` in
 * use makes Node run its hook on every promise of the process, traced or not. Log lines get the ids
 * from the ingest step that writes them ({@link IngestTrace.within}, {@link traceLogFields}).
 */
export function createTracing(config: TracingConfig): RelayTracing {
  if (config.otelTracesExporter === 'none' || config.otelTracesSampler === 'always_off') return tracingOff;
  const base = config.otelExporterOtlpEndpoint.replace(/\/+$/, '');
  const recorder = createSpanRecorder({
    url: config.otelExporterOtlpTracesEndpoint || `${base}/v1/traces`,
    protocol: config.otelExporterOtlpProtocol,
    resource: {
      ...parseOtelPairs(config.otelResourceAttributes ?? ''),
      'service.name': config.otelServiceName,
      'telemetry.sdk.language': 'nodejs',
      'telemetry.sdk.name': 'roost',
    },
    scope: 'roost-relay',
    sampler: { name: config.otelTracesSampler, ratio: config.otelTracesSamplerArg },
    headers: parseOtelPairs(config.otelExporterOtlpHeaders ?? ''),
    scheduleDelayMs: config.otelBspScheduleDelay ?? 5000,
    maxQueueSize: config.otelBspMaxQueueSize ?? 2048,
    maxExportBatchSize: config.otelBspMaxExportBatchSize ?? 512,
    exportTimeoutMs: config.otelBspExportTimeout ?? 30_000,
  });
  return createTracingWith(recorder.tracer, recorder, config.otelTracesSampler);
}

/**
 * Tracing over a given tracer (tests pass one with an in-process exporter). `sampler` says which
 * events get span work at all: with a `parentbased_always_off` root (the default) an event without a
 * sampled `traceparent` costs one scan of its tags and nothing else.
 */
export function createTracingWith(
  tracer: Tracer,
  provider: { forceFlush(): Promise<void>; shutdown(): Promise<void> },
  sampler: TraceSamplerName = 'parentbased_always_on',
): RelayTracing {
  const pending = new Map<string, Ingest>();
  // seq → context of the queued wake, so the push sent later (once, for however many events) joins the
  // trace of the event that queued it. Bounded: a wake older than this many queued ones starts its own trace.
  const wakes = new Map<number, Context>();
  const maxWakes = 10_000;
  // The last RECENT_TRACES traced public events, a ring (a Map trimmed from the front costs more per
  // event: its iterator steps over the deleted entries); looked up by a scan, for the dashboard only.
  const recent: Array<TracedEvent | undefined> = new Array(RECENT_TRACES);
  let recentNext = 0;
  const parentBased = sampler.startsWith('parentbased_');
  const roots = sampler !== 'parentbased_always_off';

  const startIngest = (event: NostrEvent, isPrivate: boolean): IngestTrace | undefined => {
    const parent = isPrivate ? undefined : getTraceparent(event.tags);
    // The sampler's decision, taken before any span object exists.
    if (parent ? parentBased && !parent.sampled : !roots) return undefined;
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
    if (!span.isRecording()) return undefined; // a ratio sampler said no
    if (!isPrivate) {
      recent[recentNext] = { eventId: event.id, kind: event.kind, traceId: span.spanContext().traceId };
      recentNext = (recentNext + 1) % RECENT_TRACES;
    }
    return new Ingest(span, parentCtx, event.id, pending);
  };

  return {
    enabled: true,
    startIngest,
    traceIngest(event, isPrivate, fn) {
      const t = startIngest(event, isPrivate);
      return t ? t.run(() => t.within(() => fn(t))) : fn(undefined);
    },
    wakeQueued(eventId, seq) {
      const parent = pending.get(eventId)?.ctx;
      if (!parent) return;
      const span = tracer.startSpan('relay.wake.queue', { attributes: { 'nostr.seq': seq } }, parent);
      span.end();
      wakes.delete(seq);
      wakes.set(seq, trace.setSpan(parent, span));
      if (wakes.size > maxWakes) wakes.delete(wakes.keys().next().value as number);
    },
    wakeSend(seq, platform) {
      const parent = wakes.get(seq);
      // A wake of an untraced event is sent untraced, unless the operator asked for relay-rooted traces.
      if (!parent && !roots) return () => undefined;
      const span = tracer.startSpan(
        'relay.wake.send',
        { kind: SpanKind.CLIENT, attributes: { 'push.platform': platform, 'nostr.seq': seq } },
        parent ?? ROOT_CONTEXT,
      );
      return (outcome) => {
        span.setAttribute('push.outcome', outcome);
        if (outcome === 'sent') wakes.delete(seq);
        span.end();
      };
    },
    traceCommitted(eventId, fn) {
      const ingest = pending.size === 0 ? undefined : pending.get(eventId);
      if (!ingest) return fn();
      pending.delete(eventId);
      // Synchronous (fan-out and the saved hooks): a step is an event, not a span.
      ingest.mark('stored');
      const out = ingest.within(fn);
      ingest.mark('fanned_out');
      return out;
    },
    isPending: (eventId) => pending.size > 0 && pending.has(eventId),
    recentTraces() {
      const out: TracedEvent[] = [];
      for (let i = 1; i <= RECENT_TRACES; i++) {
        const t = recent[(recentNext - i + RECENT_TRACES) % RECENT_TRACES];
        if (t) out.push(t);
      }
      return out;
    },
    getTraceId(eventId) {
      for (let i = 1; i <= RECENT_TRACES; i++) {
        const t = recent[(recentNext - i + RECENT_TRACES) % RECENT_TRACES];
        if (t?.eventId === eventId) return t.traceId; // the latest, for an event sent again
      }
      return undefined;
    },
    flush: () => provider.forceFlush(),
    close: () => provider.shutdown(),
  };
}

/** The ingest whose synchronous step is running now (see {@link IngestTrace.within}), if any. */
let current: Ingest | undefined;

/**
 * One traced EVENT frame: one span, its steps marked on it. The span is passed explicitly: no async
 * context, and the steps add no closure or promise of their own.
 */
class Ingest implements IngestTrace {
  readonly span: Span;
  readonly #parent: Context;
  #ctx: Context | undefined;
  readonly #eventId: string;
  readonly #pending: Map<string, Ingest>;

  constructor(span: Span, parent: Context, eventId: string, pending: Map<string, Ingest>) {
    this.span = span;
    this.#parent = parent;
    this.#eventId = eventId;
    this.#pending = pending;
  }

  /** The context with `relay.ingest` as its span: the parent of a wake queued for the event (made when first asked). */
  get ctx(): Context {
    this.#ctx ??= trace.setSpan(this.#parent, this.span);
    return this.#ctx;
  }

  within<T>(fn: () => T): T {
    const outer = current;
    current = this;
    try {
      return fn();
    } finally {
      current = outer;
    }
  }

  mark(step: IngestStep): void {
    this.span.addEvent(step);
  }

  store<T>(eventId: string, write: () => Promise<T>): Promise<T> {
    this.#pending.set(eventId, this);
    return write();
  }

  outcome(accepted: boolean, reason: string): void {
    if (!reason) {
      this.span.setAttribute('nostr.ok', accepted);
      return;
    }
    const colon = reason.indexOf(':');
    this.span.setAttributes({ 'nostr.ok': accepted, 'nostr.reason': colon > 0 ? reason.slice(0, colon) : reason });
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      this.span.recordException(err as Error);
      this.span.setStatus({ code: SpanStatusCode.ERROR });
      throw err;
    } finally {
      this.#pending.delete(this.#eventId);
      this.span.end();
    }
  }
}

/**
 * pino mixin: `trace_id` and `span_id` of the ingest step running now ({@link IngestTrace.within}),
 * else of the active span of a context manager the application registered; nothing otherwise (and
 * when tracing is off). Called only for a line that is written.
 */
export function traceLogFields(): Record<string, string> {
  const span = current?.span ?? trace.getSpan(context.active());
  if (!span) return {};
  const c = span.spanContext();
  return { trace_id: c.traceId, span_id: c.spanId };
}
