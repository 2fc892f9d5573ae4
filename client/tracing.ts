import {
  type Attributes,
  type Context,
  context,
  isSpanContextValid,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  TraceFlags,
  trace,
} from '@opentelemetry/api';
import { getTraceparent, makeTraceparentTag, type TraceParent } from '../shared/trace-context.js';

/**
 * Client spans over the OpenTelemetry API only (browser-safe): the application registers an SDK, or
 * passes a tracer; without one every span is the API's no-op and no `traceparent` tag is added, so
 * events are exactly what they were (docs/observability.md).
 */

/** The tracer an agent uses when none is given: the global one, a no-op until an SDK is registered. */
export function getDefaultTracer(): Tracer {
  return trace.getTracer('roost-client');
}

/**
 * A pino `mixin` for the application's logger: `trace_id` and `span_id` of the active span (inside an
 * agent's handler, its `client.handle` span), nothing outside a span. Needs a context manager, which
 * registering an OpenTelemetry SDK installs.
 */
export function getTraceLogFields(): Record<string, string> {
  const span = trace.getSpan(context.active());
  if (!span) return {};
  const c = span.spanContext();
  return isSpanContextValid(c) ? { trace_id: c.traceId, span_id: c.spanId } : {};
}

/** A span for something the agent sends, and the `traceparent` tag naming it (none when not recording). */
export function startSendSpan(tracer: Tracer, name: string): { span: Span; tag: [string, string] | undefined } {
  const span = tracer.startSpan(name, { kind: SpanKind.PRODUCER });
  return { span, tag: getSpanTag(span) };
}

/** The `traceparent` tag naming a span; undefined for the API's no-op span (no SDK registered). */
export function getSpanTag(span: Span): [string, string] | undefined {
  const c = span.spanContext();
  if (!isSpanContextValid(c)) return undefined;
  return makeTraceparentTag({ traceId: c.traceId, spanId: c.spanId, sampled: (c.traceFlags & TraceFlags.SAMPLED) === 1 });
}

/**
 * Adds the `traceparent` tag naming `span` to a template (nothing when not recording). Only for
 * public events, or for signed events that travel inside encrypted DMs (private tasks).
 */
export function addTraceTag<T extends { tags: string[][] }>(template: T, span: Span): T {
  const tag = getSpanTag(span);
  if (tag) template.tags.push(tag);
  return template;
}

/** Runs `fn` inside `span` (active, so the app's own spans and logs join it), ending it after. */
export async function runInSpan<T>(span: Span, fn: () => Promise<T>): Promise<T> {
  try {
    return await context.with(trace.setSpan(context.active(), span), fn);
  } catch (err) {
    span.recordException(err as Error);
    span.setStatus({ code: SpanStatusCode.ERROR });
    throw err;
  } finally {
    span.end();
  }
}

/** The context a span continues: a remote trace parent (from a tag), a local span, or none (a new trace). */
export function getParentContext(parent: TraceParent | Span | undefined): Context {
  if (parent === undefined) return ROOT_CONTEXT;
  if ('spanContext' in parent) return trace.setSpan(ROOT_CONTEXT, parent);
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId: parent.traceId,
    spanId: parent.spanId,
    traceFlags: parent.sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
    isRemote: true,
  });
}

/** A span that is a child of `parent` (a trace parent read from a tag, or a span of this agent). */
export function startChildSpan(tracer: Tracer, name: string, parent: TraceParent | Span | undefined, kind: SpanKind, attributes: Attributes = {}): Span {
  return tracer.startSpan(name, { kind, attributes }, getParentContext(parent));
}

/** Runs `fn` with `span` active (so a DM sent inside is its child), without ending the span. */
export function withSpan<T>(span: Span, fn: () => T): T {
  return context.with(trace.setSpan(context.active(), span), fn);
}

/**
 * A span for the recipient's handling of a message: a child of the sender's span when the message
 * (a public event's tags, or a DM's rumor tags) names one, else a trace of its own.
 */
export function startHandleSpan(tracer: Tracer, name: string, tags: readonly (readonly string[])[], attributes: Record<string, string>): Span {
  return startChildSpan(tracer, name, getTraceparent(tags), SpanKind.CONSUMER, attributes);
}
