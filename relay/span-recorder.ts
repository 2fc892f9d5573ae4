import { randomFillSync } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import {
  type Attributes,
  type AttributeValue,
  type Context,
  context as apiContext,
  type Exception,
  type Link,
  type Span,
  type SpanAttributes,
  type SpanContext,
  SpanKind,
  type SpanOptions,
  type SpanStatus,
  SpanStatusCode,
  type TimeInput,
  type Tracer,
  TraceFlags,
  trace,
} from '@opentelemetry/api';

/**
 * A light span recorder behind the OpenTelemetry API, for the relay (docs/performance.md, "Tracing"):
 * a {@link Tracer} whose spans are plain records (hex ids cut from a pool of random bytes, times from
 * one clock read, attributes as a flat key, value list), queued when they end and exported in batches as
 * OTLP/HTTP protobuf (written straight into one reused buffer) or JSON. The relay uses a handful of
 * span shapes and needs no span processors, resource detectors or context manager; the standard SDK
 * pays for those on every span (about 3 µs a span and 5.5–8 µs to export it, measured), this one a
 * fraction of it (`node bench/tracing.mjs`). Same wire format: any OTLP collector reads it.
 */

/** Which spans are recorded: an `OTEL_TRACES_SAMPLER` value and its argument. */
export interface RecorderSampler {
  name: 'parentbased_always_off' | 'parentbased_always_on' | 'parentbased_traceidratio' | 'always_on' | 'always_off' | 'traceidratio';
  ratio: number;
}

/** The batch exporter's settings (`OTEL_BSP_*`, `OTEL_EXPORTER_OTLP_*`). */
export interface RecorderOptions {
  /** Full URL the batches are POSTed to (`<endpoint>/v1/traces`). */
  url: string;
  protocol: 'http/protobuf' | 'http/json';
  /** Resource attributes (`service.name` and any from `OTEL_RESOURCE_ATTRIBUTES`). */
  resource: Attributes;
  /** Instrumentation scope name. */
  scope: string;
  sampler: RecorderSampler;
  /** Extra request headers (`OTEL_EXPORTER_OTLP_HEADERS`). */
  headers?: Record<string, string>;
  /** `OTEL_BSP_SCHEDULE_DELAY`: ms between exports of a partial batch. */
  scheduleDelayMs: number;
  /** `OTEL_BSP_MAX_QUEUE_SIZE`: ended spans held for export; more are dropped (counted). */
  maxQueueSize: number;
  /** `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`: spans per export request; a full batch is exported at once. */
  maxExportBatchSize: number;
  /** `OTEL_BSP_EXPORT_TIMEOUT`: ms an export request may take. */
  exportTimeoutMs: number;
}

/** The recorder: an OpenTelemetry {@link Tracer} plus the provider-side flush and shutdown. */
export interface SpanRecorder {
  readonly tracer: Tracer;
  /** Exports every ended span now (resolves when the requests are answered or failed). */
  forceFlush(): Promise<void>;
  /** Flushes, then records nothing more. */
  shutdown(): Promise<void>;
  /** Spans dropped because the queue was full or their export failed. */
  readonly dropped: number;
}

// --- ids: hex cut from a pool of random bytes (one randomFillSync per 4 KiB, not per span) ---

const POOL = 4096;
const ZERO_TRACE_ID = '0'.repeat(32);
const ZERO_SPAN_ID = '0'.repeat(16);
let pool = '';
let poolAt = POOL * 2;
function randomHex(bytes: number): string {
  if (poolAt + bytes * 2 > pool.length) {
    pool = randomFillSync(Buffer.allocUnsafe(POOL)).toString('hex');
    poolAt = 0;
  }
  const out = pool.slice(poolAt, poolAt + bytes * 2);
  poolAt += bytes * 2;
  // An all-zero id is invalid (W3C); at these odds it is a fresh draw.
  return out === ZERO_TRACE_ID || out === ZERO_SPAN_ID ? randomHex(bytes) : out;
}

// --- time: epoch milliseconds (fractional), as the API's clock ---

const origin = performance.timeOrigin;
const nowMs = () => origin + performance.now();

function toMs(t: TimeInput | undefined): number {
  if (t === undefined) return nowMs();
  if (typeof t === 'number') return t < 1e11 ? origin + t : t; // a performance.now() value, or epoch ms
  if (t instanceof Date) return t.getTime();
  return t[0] * 1e3 + t[1] / 1e6; // HrTime [s, ns]
}

/** One recorded event on a span. */
interface RecordedEvent {
  name: string;
  ms: number;
  attributes: Attributes | undefined;
}

/** The sampler's decision for a new span. */
function sampled(sampler: RecorderSampler, parent: SpanContext | undefined, traceId: string): boolean {
  const { name } = sampler;
  if (parent && name.startsWith('parentbased_')) return (parent.traceFlags & TraceFlags.SAMPLED) !== 0;
  if (name.endsWith('always_on')) return true;
  if (name.endsWith('always_off')) return false;
  // traceidratio: the trace id's last 8 hex digits as a share of 2^32, so every service that sees
  // this trace id with the same ratio decides the same.
  return Number.parseInt(traceId.slice(24), 16) / 0x1_0000_0000 < sampler.ratio;
}

/** A recording span: a plain record, queued when it ends. */
class RecordedSpan implements Span {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string;
  readonly traceState: string;
  name: string;
  readonly kind: SpanKind;
  readonly startMs: number;
  endMs = 0;
  /** Attributes as key, value, key, value… (adding one is a push, not a new object shape; encoding walks it in order). */
  attributes: Array<string | AttributeValue>;
  events: RecordedEvent[] | undefined;
  links: Link[] | undefined;
  statusCode: SpanStatusCode = SpanStatusCode.UNSET;
  statusMessage: string | undefined;
  #ended = false;
  readonly #done: (s: RecordedSpan) => void;
  #ctx: SpanContext | undefined;

  constructor(name: string, options: SpanOptions, traceId: string, parent: SpanContext | undefined, done: (s: RecordedSpan) => void) {
    this.traceId = traceId;
    this.spanId = randomHex(8);
    this.parentSpanId = parent?.spanId ?? '';
    this.traceState = parent?.traceState?.serialize() ?? '';
    this.name = name;
    this.kind = options.kind ?? SpanKind.INTERNAL;
    this.startMs = toMs(options.startTime);
    const attrs: Array<string | AttributeValue> = [];
    const given = options.attributes;
    if (given)
      for (const k in given) {
        const v = given[k];
        if (v !== undefined && v !== null) attrs.push(k, v);
      }
    this.attributes = attrs;
    this.links = options.links?.length ? [...options.links] : undefined;
    this.#done = done;
  }

  spanContext(): SpanContext {
    this.#ctx ??= { traceId: this.traceId, spanId: this.spanId, traceFlags: TraceFlags.SAMPLED };
    return this.#ctx;
  }
  setAttribute(key: string, value: SpanAttributes[string]): this {
    if (this.#ended || value === undefined || value === null) return this;
    const a = this.attributes;
    for (let i = 0; i < a.length; i += 2)
      if (a[i] === key) {
        a[i + 1] = value;
        return this;
      }
    a.push(key, value);
    return this;
  }
  setAttributes(attributes: SpanAttributes): this {
    for (const k in attributes) this.setAttribute(k, attributes[k]);
    return this;
  }
  addEvent(name: string, attributesOrStartTime?: Attributes | TimeInput, startTime?: TimeInput): this {
    if (this.#ended) return this;
    let attributes: Attributes | undefined;
    if (
      attributesOrStartTime !== undefined &&
      (typeof attributesOrStartTime === 'number' || attributesOrStartTime instanceof Date || Array.isArray(attributesOrStartTime))
    )
      startTime = attributesOrStartTime as TimeInput;
    else attributes = attributesOrStartTime as Attributes | undefined;
    (this.events ??= []).push({ name, ms: toMs(startTime), attributes });
    return this;
  }
  addLink(link: Link): this {
    if (!this.#ended) (this.links ??= []).push(link);
    return this;
  }
  addLinks(links: Link[]): this {
    for (const l of links) this.addLink(l);
    return this;
  }
  setStatus(status: SpanStatus): this {
    if (!this.#ended) {
      this.statusCode = status.code;
      this.statusMessage = status.message;
    }
    return this;
  }
  updateName(name: string): this {
    if (!this.#ended) this.name = name;
    return this;
  }
  end(endTime?: TimeInput): void {
    if (this.#ended) return;
    this.#ended = true;
    this.endMs = Math.max(toMs(endTime), this.startMs);
    this.#done(this);
  }
  isRecording(): boolean {
    return !this.#ended;
  }
  recordException(exception: Exception, time?: TimeInput): void {
    const attributes: Attributes = {};
    if (typeof exception === 'string') attributes['exception.message'] = exception;
    else {
      const e = exception as { name?: string; code?: string | number; message?: string; stack?: string };
      const type = e.name ?? (e.code !== undefined ? String(e.code) : undefined);
      if (type) attributes['exception.type'] = type;
      if (e.message) attributes['exception.message'] = e.message;
      if (e.stack) attributes['exception.stacktrace'] = e.stack;
    }
    this.addEvent('exception', attributes, time);
  }
}

/** Export requests at once; more batches wait in the queue (OTEL_BSP_MAX_QUEUE_SIZE bounds it). */
const MAX_IN_FLIGHT = 2;

/** Builds the recorder; the batch timer is unref'd (it never keeps the process alive). */
export function createSpanRecorder(options: RecorderOptions): SpanRecorder {
  let queue: RecordedSpan[] = [];
  let dropped = 0;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  const inFlight = new Set<Promise<void>>();
  let sent = 0; // spans handed to an export request, ever
  const encode = options.protocol === 'http/json' ? encodeJson : encodeProtobuf;
  const contentType = options.protocol === 'http/json' ? 'application/json' : 'application/x-protobuf';

  const exportBatch = (batch: RecordedSpan[]): Promise<void> => {
    const body = encode(batch, options.resource, options.scope);
    const p = post(options.url, body, contentType, options.headers, options.exportTimeoutMs).then(
      (ok) => {
        if (!ok) dropped += batch.length;
      },
      () => {
        dropped += batch.length;
      },
    );
    inFlight.add(p);
    sent += batch.length;
    void p.finally(() => {
      inFlight.delete(p);
      // the queue filled while the collector was busy: the next full batch goes now
      if (queue.length >= options.maxExportBatchSize) drain(false);
    });
    return p;
  };
  /** Exports the queue in batches: every span (the timer, a flush) or only full batches (a batch filled). */
  const drain = (all: boolean): void => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    const size = options.maxExportBatchSize;
    // At most MAX_IN_FLIGHT requests at once: a slow collector makes the queue fill and drop spans, it
    // does not pile up requests (and their bodies) in the relay.
    while (inFlight.size < MAX_IN_FLIGHT && (queue.length >= size || (all && queue.length > 0))) {
      const batch = queue.length <= size ? queue : queue.slice(0, size);
      queue = batch === queue ? [] : queue.slice(size);
      void exportBatch(batch);
    }
    if (queue.length > 0) schedule();
  };
  const drainAll = () => drain(true);
  const drainFull = () => drain(false);
  /** The timer for a partial batch (at most one). */
  const schedule = (): void => {
    if (timer) return;
    timer = setTimeout(drainAll, options.scheduleDelayMs);
    timer.unref();
  };
  let fullPending = false;
  const ended = (span: RecordedSpan): void => {
    if (closed) return;
    if (queue.length >= options.maxQueueSize) {
      dropped++;
      return;
    }
    queue.push(span);
    // A full batch goes out on the next turn (off the ingest's stack); a partial one waits for the timer.
    if (queue.length >= options.maxExportBatchSize) {
      if (!fullPending) {
        fullPending = true;
        setImmediate(() => {
          fullPending = false;
          drainFull();
        });
      }
    } else schedule();
  };

  const tracer: Tracer = {
    startSpan(name: string, spanOptions: SpanOptions = {}, ctx: Context = apiContext.active()): Span {
      const parent = spanOptions.root ? undefined : trace.getSpanContext(ctx);
      const valid = parent && trace.isSpanContextValid(parent) ? parent : undefined;
      const traceId = valid?.traceId ?? randomHex(16);
      if (closed || !sampled(options.sampler, valid, traceId))
        return trace.wrapSpanContext({ traceId, spanId: randomHex(8), traceFlags: TraceFlags.NONE, traceState: valid?.traceState });
      return new RecordedSpan(name, spanOptions, traceId, valid, ended);
    },
    startActiveSpan<F extends (span: Span) => unknown>(name: string, ...args: unknown[]): ReturnType<F> {
      const fn = args[args.length - 1] as F;
      const spanOptions = (args.length > 1 ? args[0] : undefined) as SpanOptions | undefined;
      const ctx = (args.length > 2 ? args[1] : apiContext.active()) as Context;
      const span = this.startSpan(name, spanOptions, ctx);
      return apiContext.with(trace.setSpan(ctx, span), fn as (s: Span) => ReturnType<F>, undefined, span);
    },
  };

  /** Exports what is queued now (not what keeps arriving meanwhile) and waits for the answers. */
  const forceFlush = async (): Promise<void> => {
    const target = sent + queue.length;
    for (;;) {
      drainAll();
      if (sent >= target || inFlight.size === 0) break;
      await Promise.race([...inFlight]);
    }
    await Promise.all([...inFlight]);
  };
  return {
    tracer,
    forceFlush,
    async shutdown() {
      await forceFlush();
      closed = true;
    },
    get dropped() {
      return dropped;
    },
  };
}

/** POSTs one batch; true when the collector answered 2xx. Never throws into the relay. */
function post(url: string, body: Buffer, contentType: string, headers: Record<string, string> | undefined, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = (url.startsWith('https:') ? httpsRequest : httpRequest)(url, {
      method: 'POST',
      headers: { ...headers, 'content-type': contentType, 'content-length': body.length },
      timeout: timeoutMs,
    });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300));
      res.on('error', () => resolve(false));
    });
    req.on('timeout', () => req.destroy(new Error('export timeout')));
    req.on('error', () => resolve(false));
    req.end(body);
  });
}

// --- OTLP protobuf (opentelemetry-proto: collector/trace/v1, trace/v1, common/v1, resource/v1) ---

/**
 * A protobuf writer into one growing buffer, reused across batches. A nested message's length is
 * written in front of it once it is known, in bytes reserved for the usual size of that message; one
 * of another size is moved along to fit (so every length is a minimal varint).
 */
class Writer {
  buf = Buffer.allocUnsafe(64 * 1024);
  pos = 0;

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }
  varint(v: number): void {
    this.ensure(10);
    while (v > 0x7f) {
      this.buf[this.pos++] = (v & 0x7f) | 0x80;
      v = Math.floor(v / 128);
    }
    this.buf[this.pos++] = v;
  }
  tag(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }
  /**
   * A string field. ASCII (every name, key and id the relay writes) is copied a char at a time: for
   * short strings that is several times faster than `Buffer.byteLength` and `buf.write`, which cost
   * a few hundred ns a call; anything else takes that path.
   */
  string(field: number, s: string): void {
    const n = s.length;
    if (n < 0x80) {
      const at = this.pos;
      this.ensure(n + 6);
      const buf = this.buf;
      buf[at] = (field << 3) | 2; // every field number written here is below 16
      buf[at + 1] = n;
      let i = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c > 0x7f) break;
        buf[at + 2 + i] = c;
      }
      if (i === n) {
        this.pos = at + 2 + n;
        return;
      }
    }
    const len = Buffer.byteLength(s);
    this.tag(field, 2);
    this.varint(len);
    this.ensure(len);
    this.pos += this.buf.write(s, this.pos, 'utf8');
  }
  /** A bytes field from lower-case or upper-case hex (an id), parsed a char at a time. */
  hex(field: number, h: string): void {
    const n = h.length >> 1;
    this.ensure(n + 6);
    const buf = this.buf;
    let at = this.pos;
    buf[at++] = (field << 3) | 2;
    buf[at++] = n; // ids are 8 or 16 bytes
    for (let i = 0; i < n; i++) buf[at++] = (HEX[h.charCodeAt(2 * i)]! << 4) | HEX[h.charCodeAt(2 * i + 1)]!;
    this.pos = at;
  }
  /** fixed64 of epoch ms as nanoseconds, exactly (no 2^53 overflow: split into 32-bit halves). */
  nanos(field: number, ms: number): void {
    this.tag(field, 1);
    this.ensure(8);
    const whole = Math.floor(ms);
    const frac = Math.round((ms - whole) * 1e6); // ns within the ms
    // whole·10^6 + frac = hi·2^32 + lo, computed in parts that stay below 2^53
    const wHi = Math.floor(whole / 0x1_0000_0000);
    const wLo = whole - wHi * 0x1_0000_0000;
    const low = wLo * 1e6 + frac; // < 2^52
    const carry = Math.floor(low / 0x1_0000_0000);
    this.buf.writeUInt32LE(low - carry * 0x1_0000_0000, this.pos);
    this.buf.writeUInt32LE(wHi * 1e6 + carry, this.pos + 4);
    this.pos += 8;
  }
  double(field: number, v: number): void {
    this.tag(field, 1);
    this.ensure(8);
    this.buf.writeDoubleLE(v, this.pos);
    this.pos += 8;
  }
  int64(field: number, v: number): void {
    this.tag(field, 0);
    if (v >= 0) this.varint(v);
    else {
      // two's complement in 10 bytes
      let b = BigInt.asUintN(64, BigInt(v));
      this.ensure(10);
      while (b > 0x7fn) {
        this.buf[this.pos++] = Number(b & 0x7fn) | 0x80;
        b >>= 7n;
      }
      this.buf[this.pos++] = Number(b);
    }
  }
  /**
   * Starts a nested message: its tag, then `reserve` bytes for its length (1 for small messages, 2 for
   * a span, 3 for a batch); returns where its content begins.
   */
  begin(field: number, reserve = 1): number {
    this.tag(field, 2);
    this.ensure(reserve);
    this.pos += reserve;
    return this.pos;
  }
  /** Writes the length reserved by {@link begin}; content of another varint size is moved to fit (rare). */
  end(start: number, reserved = 1): void {
    const len = this.pos - start;
    let size = 1;
    for (let v = len >>> 7; v > 0; v >>>= 7) size++;
    if (size !== reserved) {
      this.ensure(size - reserved);
      this.buf.copy(this.buf, start + size - reserved, start, this.pos);
      this.pos += size - reserved;
    }
    let at = start - reserved;
    let v = len;
    while (v > 0x7f) {
      this.buf[at++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    this.buf[at] = v;
  }
}

/** The value of each hex digit by char code (0 for anything else). */
const HEX = new Uint8Array(128);
for (let i = 0; i < 16; i++) {
  HEX['0123456789abcdef'.charCodeAt(i)] = i;
  HEX['0123456789ABCDEF'.charCodeAt(i)] = i;
}

/** AnyValue: string 1, bool 2, int 3, double 4, array 5 (ArrayValue: values 1). */
function writeAnyValue(w: Writer, field: number, v: AttributeValue | undefined): void {
  const at = w.begin(field);
  if (typeof v === 'string') w.string(1, v);
  else if (typeof v === 'boolean') {
    w.tag(2, 0);
    w.varint(v ? 1 : 0);
  } else if (typeof v === 'number') {
    if (Number.isSafeInteger(v)) w.int64(3, v);
    else w.double(4, v);
  } else if (Array.isArray(v)) {
    const arr = w.begin(5);
    for (const item of v) writeAnyValue(w, 1, (item ?? undefined) as AttributeValue | undefined);
    w.end(arr);
  }
  w.end(at);
}

/** repeated KeyValue { key 1, value 2 } as field `field`. */
/** A span's attributes (key, value, …) as repeated KeyValue. */
function writeAttributeList(w: Writer, field: number, a: Array<string | AttributeValue>): void {
  for (let i = 0; i < a.length; i += 2) {
    const at = w.begin(field);
    w.string(1, a[i] as string);
    writeAnyValue(w, 2, a[i + 1] as AttributeValue);
    w.end(at);
  }
}

function writeAttributes(w: Writer, field: number, attributes: Attributes | undefined): void {
  if (!attributes) return;
  for (const key in attributes) {
    const value = attributes[key];
    if (value === undefined || value === null) continue;
    const at = w.begin(field);
    w.string(1, key);
    writeAnyValue(w, 2, value);
    w.end(at);
  }
}

const writer = new Writer();

/** ExportTraceServiceRequest { resource_spans 1 { resource 1, scope_spans 2 { scope 1, spans 2 } } }. */
function encodeProtobuf(spans: RecordedSpan[], resource: Attributes, scope: string): Buffer {
  const w = writer;
  w.pos = 0;
  const rs = w.begin(1, 3);
  const res = w.begin(1);
  writeAttributes(w, 1, resource);
  w.end(res);
  const ss = w.begin(2, 3);
  const sc = w.begin(1);
  w.string(1, scope);
  w.end(sc);
  for (const s of spans) {
    // Span: trace_id 1, span_id 2, trace_state 3, parent_span_id 4, name 5, kind 6, start 7, end 8,
    // attributes 9, events 11, links 13, status 15 (message 2, code 3)
    const sp = w.begin(2, 2);
    w.hex(1, s.traceId);
    w.hex(2, s.spanId);
    if (s.traceState) w.string(3, s.traceState);
    if (s.parentSpanId) w.hex(4, s.parentSpanId);
    w.string(5, s.name);
    w.tag(6, 0);
    w.varint(s.kind + 1); // the API's kinds start at INTERNAL = 0, OTLP's at UNSPECIFIED = 0
    w.nanos(7, s.startMs);
    w.nanos(8, s.endMs);
    writeAttributeList(w, 9, s.attributes);
    if (s.events)
      for (const e of s.events) {
        // Event: time_unix_nano 1, name 2, attributes 3
        const ev = w.begin(11);
        w.nanos(1, e.ms);
        w.string(2, e.name);
        writeAttributes(w, 3, e.attributes);
        w.end(ev);
      }
    if (s.links)
      for (const l of s.links) {
        // Link: trace_id 1, span_id 2, trace_state 3, attributes 4
        const lk = w.begin(13);
        w.hex(1, l.context.traceId);
        w.hex(2, l.context.spanId);
        const state = l.context.traceState?.serialize();
        if (state) w.string(3, state);
        writeAttributes(w, 4, l.attributes);
        w.end(lk);
      }
    if (s.statusCode !== SpanStatusCode.UNSET) {
      const st = w.begin(15);
      if (s.statusMessage) w.string(2, s.statusMessage);
      w.tag(3, 0);
      w.varint(s.statusCode);
      w.end(st);
    }
    w.end(sp, 2);
  }
  w.end(ss, 3);
  w.end(rs, 3);
  return Buffer.from(w.buf.subarray(0, w.pos)); // a copy: the writer's buffer is reused by the next batch
}

// --- OTLP JSON (the same messages; ids in hex, 64-bit integers as decimal strings) ---

const jsonNanos = (ms: number): string => {
  const whole = Math.floor(ms);
  return (BigInt(whole) * 1_000_000n + BigInt(Math.round((ms - whole) * 1e6))).toString();
};
const jsonValue = (v: AttributeValue | undefined): Record<string, unknown> =>
  typeof v === 'string'
    ? { stringValue: v }
    : typeof v === 'boolean'
      ? { boolValue: v }
      : typeof v === 'number'
        ? Number.isSafeInteger(v)
          ? { intValue: String(v) }
          : { doubleValue: v }
        : Array.isArray(v)
          ? { arrayValue: { values: v.map((x) => jsonValue((x ?? undefined) as AttributeValue | undefined)) } }
          : {};
const jsonAttributes = (a: Attributes | undefined) =>
  Object.entries(a ?? {})
    .filter(([, v]) => v !== undefined && v !== null)
    .map(([key, value]) => ({ key, value: jsonValue(value) }));

const jsonAttributeList = (a: Array<string | AttributeValue>) => {
  const out: Array<{ key: string; value: Record<string, unknown> }> = [];
  for (let i = 0; i < a.length; i += 2) out.push({ key: a[i] as string, value: jsonValue(a[i + 1] as AttributeValue) });
  return out;
};

function encodeJson(spans: RecordedSpan[], resource: Attributes, scope: string): Buffer {
  return Buffer.from(
    JSON.stringify({
      resourceSpans: [
        {
          resource: { attributes: jsonAttributes(resource) },
          scopeSpans: [
            {
              scope: { name: scope },
              spans: spans.map((s) => ({
                traceId: s.traceId,
                spanId: s.spanId,
                ...(s.traceState ? { traceState: s.traceState } : {}),
                ...(s.parentSpanId ? { parentSpanId: s.parentSpanId } : {}),
                name: s.name,
                kind: s.kind + 1,
                startTimeUnixNano: jsonNanos(s.startMs),
                endTimeUnixNano: jsonNanos(s.endMs),
                attributes: jsonAttributeList(s.attributes),
                events: (s.events ?? []).map((e) => ({ timeUnixNano: jsonNanos(e.ms), name: e.name, attributes: jsonAttributes(e.attributes) })),
                links: (s.links ?? []).map((l) => ({ traceId: l.context.traceId, spanId: l.context.spanId, attributes: jsonAttributes(l.attributes) })),
                status: s.statusCode === SpanStatusCode.UNSET ? {} : { code: s.statusCode, ...(s.statusMessage ? { message: s.statusMessage } : {}) },
              })),
            },
          ],
        },
      ],
    }),
  );
}
