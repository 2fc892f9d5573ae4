import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One span as an OTLP/HTTP export carries it (ids in hex). */
export interface ReceivedSpan {
  service: string;
  /** The attributes of the span's resource (service.name among them). */
  resource: Record<string, unknown>;
  name: string;
  traceId: string;
  spanId: string;
  /** Empty for a root span. */
  parentSpanId: string;
  attributes: Record<string, unknown>;
  /** Names of the span's events, in order. */
  events: string[];
  /** OTLP's SpanKind (SERVER 2, CLIENT 3, …). */
  kind: number;
  /** Start and end, ns since the epoch. */
  startNs: bigint;
  endNs: bigint;
  /** Status code (0 unset, 1 ok, 2 error). */
  statusCode: number;
}

/** A collector on 127.0.0.1 accepting OTLP/HTTP trace exports at /v1/traces, protobuf or JSON. */
export interface OtlpReceiver {
  /** Base URL, as OTEL_EXPORTER_OTLP_ENDPOINT takes it. */
  url: string;
  spans: ReceivedSpan[];
  /** Content types of the export requests, in order. */
  contentTypes: string[];
  /** Headers of the export requests, in order. */
  headers: Array<Record<string, string | string[] | undefined>>;
  /** Spans per export request, in order. */
  batches: number[];
  close(): Promise<void>;
}

type AnyValue = { stringValue?: string; intValue?: string | number; boolValue?: boolean; doubleValue?: number };
type KeyValue = { key: string; value: AnyValue };

type AnyValueOrArray = AnyValue & { arrayValue?: { values?: AnyValueOrArray[] } };
const readValue = (v: AnyValueOrArray): unknown =>
  v.arrayValue
    ? (v.arrayValue.values ?? []).map(readValue)
    : (v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : (v.boolValue ?? v.doubleValue)));
const attrs = (kvs: KeyValue[] = []) => Object.fromEntries(kvs.map((kv) => [kv.key, readValue(kv.value)]));

// --- OTLP protobuf, decoded from the wire format and the field numbers of opentelemetry-proto
// (collector/trace/v1, trace/v1, common/v1, resource/v1): written here so the test checks the bytes
// the relay sends, not the encoder's own view of them.

type Field = { n: number; wire: number; varint: bigint; bytes: Buffer };

/** The fields of one protobuf message, in order. */
function fields(buf: Buffer): Field[] {
  const out: Field[] = [];
  let i = 0;
  const varint = (): bigint => {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      const b = buf[i++];
      if (b === undefined) throw new Error('truncated varint');
      v |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return v;
      shift += 7n;
    }
  };
  while (i < buf.length) {
    const key = Number(varint());
    const n = key >>> 3;
    const wire = key & 7;
    if (wire === 0) out.push({ n, wire, varint: varint(), bytes: Buffer.alloc(0) });
    else if (wire === 1 || wire === 5) {
      const len = wire === 1 ? 8 : 4;
      out.push({ n, wire, varint: 0n, bytes: buf.subarray(i, i + len) });
      i += len;
    } else if (wire === 2) {
      const len = Number(varint());
      if (i + len > buf.length) throw new Error('truncated field');
      out.push({ n, wire, varint: 0n, bytes: buf.subarray(i, i + len) });
      i += len;
    } else throw new Error(`unsupported wire type ${wire}`);
  }
  return out;
}
const all = (fs: Field[], n: number) => fs.filter((f) => f.n === n);
const first = (fs: Field[], n: number) => fs.find((f) => f.n === n);

/** AnyValue: string 1, bool 2, int 3, double 4, array 5 (ArrayValue: values 1). */
function protoValue(buf: Buffer): unknown {
  const f = fields(buf)[0];
  if (!f) return undefined;
  if (f.n === 1) return f.bytes.toString('utf8');
  if (f.n === 2) return f.varint !== 0n;
  if (f.n === 3) return Number(BigInt.asIntN(64, f.varint));
  if (f.n === 4) return f.bytes.readDoubleLE(0);
  if (f.n === 5) return all(fields(f.bytes), 1).map((v) => protoValue(v.bytes));
  return undefined;
}
/** repeated KeyValue { key 1, value 2 }. */
const protoAttrs = (kvs: Field[]) =>
  Object.fromEntries(
    kvs.map((kv) => {
      const f = fields(kv.bytes);
      const value = first(f, 2);
      return [first(f, 1)?.bytes.toString('utf8') ?? '', value ? protoValue(value.bytes) : undefined];
    }),
  );

/** ExportTraceServiceRequest { resource_spans 1 } → ResourceSpans { resource 1, scope_spans 2 } → ScopeSpans { spans 2 } → Span. */
function protoSpans(body: Buffer): ReceivedSpan[] {
  const spans: ReceivedSpan[] = [];
  for (const rs of all(fields(body), 1)) {
    const rsf = fields(rs.bytes);
    const resource = first(rsf, 1);
    const resourceAttrs = protoAttrs(resource ? all(fields(resource.bytes), 1) : []);
    const service = String(resourceAttrs['service.name']);
    for (const ss of all(rsf, 2))
      for (const s of all(fields(ss.bytes), 2)) {
        // Span: trace_id 1, span_id 2, parent_span_id 4, name 5, kind 6, start 7, end 8, attributes 9,
        // events 11 (Event: name 2), status 15 (code 3)
        const f = fields(s.bytes);
        const status = first(f, 15);
        spans.push({
          service,
          resource: resourceAttrs,
          name: first(f, 5)?.bytes.toString('utf8') ?? '',
          traceId: first(f, 1)?.bytes.toString('hex') ?? '',
          spanId: first(f, 2)?.bytes.toString('hex') ?? '',
          parentSpanId: first(f, 4)?.bytes.toString('hex') ?? '',
          attributes: protoAttrs(all(f, 9)),
          events: all(f, 11).map((e) => first(fields(e.bytes), 2)?.bytes.toString('utf8') ?? ''),
          kind: Number(first(f, 6)?.varint ?? 0n),
          startNs: first(f, 7)?.bytes.readBigUInt64LE(0) ?? 0n,
          endNs: first(f, 8)?.bytes.readBigUInt64LE(0) ?? 0n,
          statusCode: Number((status && first(fields(status.bytes), 3)?.varint) ?? 0n),
        });
      }
  }
  return spans;
}

/** OTLP JSON: the same messages, ids in hex. */
function jsonSpans(body: Buffer): ReceivedSpan[] {
  const spans: ReceivedSpan[] = [];
  const parsed = JSON.parse(body.toString('utf8')) as {
    resourceSpans: Array<{ resource?: { attributes?: KeyValue[] }; scopeSpans: Array<{ spans: Array<Record<string, unknown>> }> }>;
  };
  for (const rs of parsed.resourceSpans) {
    const resourceAttrs = attrs(rs.resource?.attributes);
    const service = String(resourceAttrs['service.name']);
    for (const ss of rs.scopeSpans)
      for (const s of ss.spans)
        spans.push({
          service,
          resource: resourceAttrs,
          name: s.name as string,
          traceId: s.traceId as string,
          spanId: s.spanId as string,
          parentSpanId: (s.parentSpanId as string | undefined) ?? '',
          attributes: attrs(s.attributes as KeyValue[] | undefined),
          events: ((s.events as Array<{ name: string }> | undefined) ?? []).map((e) => e.name),
          kind: Number(s.kind ?? 0),
          startNs: BigInt(s.startTimeUnixNano as string),
          endNs: BigInt(s.endTimeUnixNano as string),
          statusCode: Number((s.status as { code?: number } | undefined)?.code ?? 0),
        });
  }
  return spans;
}

/** Starts a receiver; a body that is not OTLP (protobuf or JSON) is answered 400 and fails the test that reads `spans`. */
export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const contentTypes: string[] = [];
  const headers: OtlpReceiver['headers'] = [];
  const batches: number[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const type = String(req.headers['content-type']);
      contentTypes.push(type);
      headers.push({ ...req.headers });
      const decode = type.startsWith('application/json') ? jsonSpans : type.startsWith('application/x-protobuf') ? protoSpans : undefined;
      if (req.method !== 'POST' || req.url !== '/v1/traces' || !decode) {
        res.writeHead(400).end();
        return;
      }
      let got: ReceivedSpan[];
      try {
        got = decode(Buffer.concat(chunks));
      } catch {
        res.writeHead(400).end();
        return;
      }
      spans.push(...got);
      batches.push(got.length);
      if (type.startsWith('application/x-protobuf')) {
        // An empty ExportTraceServiceResponse.
        res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    contentTypes,
    headers,
    batches,
    close: () => new Promise((r) => server.close(() => r())),
  };
}
