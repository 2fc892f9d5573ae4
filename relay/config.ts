import { decode as decodeNip19 } from 'nostr-tools/nip19';
import { z } from 'zod';
import { parseKindList, parseRetention } from './mailbox/retention-rules.js';
import { checkPublicUrls } from './relay-url.js';
import { iceServersSchema, parseIceServersSetting } from '../shared/ice-servers.js';

/**
 * Every relay setting, declared once with its default and description. Only this module reads
 * `process.env`; the result is validated once and frozen. Environment name: ROOST_<KEY_IN_SNAKE_CASE>,
 * except `port` (PORT), `host` (HOST) and the standard OpenTelemetry ones (OTEL_*). Command-line flags use --kebab-case.
 */
const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);
const isJsonObject = (v: string): boolean => {
  try {
    const o: unknown = JSON.parse(v);
    return typeof o === 'object' && o !== null && !Array.isArray(o);
  } catch {
    return false;
  }
};
/** A pubkey given as 64 lowercase hex characters or as an npub, as hex; undefined when it is neither. */
export function parsePubkey(text: string): string | undefined {
  if (/^[0-9a-f]{64}$/.test(text)) return text;
  try {
    const d = decodeNip19(text);
    return d.type === 'npub' ? d.data : undefined;
  } catch {
    return undefined;
  }
}
/** A comma-separated list of pubkeys (hex or npub), checked entry by entry and normalized to hex. */
const pubkeyList = () =>
  z
    .string()
    .superRefine((v, c) => {
      for (const item of v.split(',').map((k) => k.trim())) {
        if (item !== '' && parsePubkey(item) === undefined)
          c.addIssue({ code: 'custom', message: `"${item.slice(0, 70)}" is not a pubkey (64 hex characters or an npub)` });
      }
    })
    .transform((v) =>
      v
        .split(',')
        .map((k) => k.trim())
        .filter((k) => k !== '')
        .map((k) => parsePubkey(k)!)
        .join(','),
    )
    .default('');
/** An OpenTelemetry `key=value` list, comma-separated (OTEL_EXPORTER_OTLP_HEADERS, OTEL_RESOURCE_ATTRIBUTES). */
const otelPairs = () =>
  z
    .string()
    .default('')
    .refine((v) => v.split(',').every((p) => !p.trim() || /^[^=]+=/.test(p)), 'must be key=value pairs, comma-separated');

const bool = z.union([z.boolean(), z.enum(['true', 'false', '1', '0', 'yes', 'no']).transform((v) => v === 'true' || v === '1' || v === 'yes')]);

export const configSchema = z.object({
  // --- server ---
  port: int(0, 65535).default(7447).describe('TCP port to listen on (env PORT).'),
  host: z.string().default('0.0.0.0').describe('Interface to bind (env HOST).'),
  db: z
    .string()
    .default('./data/roost.db')
    .describe('SQLite database file (its folder is created), or postgres://user:pass@host/db for a cluster of relays on one PostgreSQL (env ROOST_DB).'),
  publicUrl: z
    .string()
    .default('')
    .superRefine((v, c) => {
      const bad = checkPublicUrls(v);
      if (bad) c.addIssue({ code: 'custom', message: bad });
    })
    .describe(
      "Public ws(s):// URL(s) of this relay, comma-separated; NIP-42 AUTH and NIP-98 must name one of them. Empty accepts only this machine's own addresses on the listening port (localhost, 127.0.0.1, [::1] and the host name for local clients; the address a connection arrived on): set it whenever clients reach the relay through another name, a proxy or a port mapping.",
    ),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe('Log level (pino).'),

  // --- tracing (issue 24; standard OpenTelemetry variables, docs/observability.md) ---
  otelTracesExporter: z
    .enum(['none', 'otlp'])
    .default('none')
    .describe("Trace exporter: `otlp` sends the relay's spans over OTLP/HTTP; `none` (default) traces nothing and costs nothing."),
  otelExporterOtlpEndpoint: z
    .string()
    .default('http://localhost:4318')
    .refine((v) => /^https?:\/\/[^/]/.test(v), 'must be an http(s):// URL')
    .describe('OTLP/HTTP collector base URL; spans go to <endpoint>/v1/traces.'),
  otelExporterOtlpProtocol: z
    .enum(['http/protobuf', 'http/json'])
    .default('http/protobuf')
    .describe('OTLP/HTTP encoding of exported spans: `http/protobuf` (default, as in OpenTelemetry; cheaper for the relay) or `http/json`.'),
  otelExporterOtlpTracesEndpoint: z
    .string()
    .default('')
    .refine((v) => v === '' || /^https?:\/\/[^/]/.test(v), 'must be an http(s):// URL')
    .describe('Full OTLP/HTTP URL for spans, used as given (instead of `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`).'),
  otelServiceName: z.string().min(1).default('roost-relay').describe("`service.name` of the relay's spans."),
  otelResourceAttributes: otelPairs().describe(
    "More resource attributes of the relay's spans, `key=value` pairs comma-separated (values URL-encoded), e.g. `deployment.environment=prod`; `OTEL_SERVICE_NAME` wins over a `service.name` here.",
  ),
  otelTracesSampler: z
    .enum(['parentbased_always_off', 'parentbased_always_on', 'parentbased_traceidratio', 'always_on', 'always_off', 'traceidratio'])
    .default('parentbased_always_off')
    .describe(
      'Which events get spans: by default only those whose sender sampled its trace (a sampled `traceparent` tag); `parentbased_always_on` also starts a trace for every other event, `parentbased_traceidratio` for a share of them (`OTEL_TRACES_SAMPLER_ARG`).',
    ),
  otelTracesSamplerArg: z.coerce.number().min(0).max(1).default(1).describe('Share of relay-rooted traces for the `*traceidratio` samplers (0–1).'),
  otelExporterOtlpHeaders: otelPairs().describe(
    'Extra headers on every OTLP export request, `key=value` pairs comma-separated (values URL-encoded), e.g. a collector API key.',
  ),
  otelBspScheduleDelay: z.coerce.number().int().min(0).default(5000).describe('Milliseconds between exports of a partial batch of spans.'),
  otelBspMaxQueueSize: z.coerce.number().int().min(1).default(2048).describe('Ended spans held for export; more are dropped (never events).'),
  otelBspMaxExportBatchSize: z.coerce.number().int().min(1).default(512).describe('Spans per export request; a full batch is exported at once.'),
  otelBspExportTimeout: z.coerce
    .number()
    .int()
    .min(1)
    .default(30000)
    .describe('Milliseconds an export request may take before it is abandoned (its spans dropped).'),
  traceUrl: z
    .string()
    .default('')
    .refine((v) => v === '' || (/^https?:\/\/[^/]/.test(v) && v.includes('{traceId}')), 'must be an http(s):// URL containing {traceId}')
    .describe(
      'Trace UI link for the dashboard, `{traceId}` replaced by the trace id (e.g. `https://jaeger.example/trace/{traceId}`); empty shows the id only.',
    ),

  // --- local discovery (DNS-SD over mDNS, docs/deploy.md) ---
  mdns: bool.default(false).describe('Advertise this relay on the local network with DNS-SD over mDNS (`_nostr-relay._tcp`; TXT: URL, pubkey, signed proof).'),
  mdnsUrl: z
    .string()
    .default('')
    .refine((v) => v === '' || /^wss?:\/\/[^/]/.test(v), 'must be a ws:// or wss:// URL')
    .describe("The ws(s):// URL advertised over mDNS; empty: ws://<HOST, or this machine's first LAN IPv4>:<port>."),

  // --- NIP-11 identity ---
  name: z.string().default('Roost').describe('Relay name in the NIP-11 document.'),
  description: z.string().default('Store-and-forward relay for agents').describe('NIP-11 description.'),
  contact: z.string().default('').describe('NIP-11 alternative contact URI.'),

  // --- limits (advertised in NIP-11 and enforced the same way) ---
  maxMessageLength: int(1024).default(131072).describe('Largest inbound WebSocket frame in bytes.'),
  maxSubscriptions: int(1).default(50).describe('Open subscriptions per connection.'),
  maxFilters: int(1).default(10).describe('Filters per REQ or COUNT.'),
  maxFilterValues: int(1).default(1000).describe('Values in one filter field (ids, authors, kinds, each #tag).'),
  maxLimit: int(1).default(500).describe('Largest `limit` honoured per filter; larger values are clamped.'),
  defaultLimit: int(1).default(500).describe('`limit` applied to a filter that gives none.'),
  maxEventTags: int(1).default(2000).describe('Most tags in one event.'),
  maxContentLength: int(1).default(65536).describe('Longest event content, in characters.'),
  createdAtPastLimit: int(0).default(94608000).describe('Oldest accepted created_at, in seconds before now (0: no limit).'),
  createdAtFutureLimit: int(0).default(900).describe('Newest accepted created_at, in seconds after now.'),
  authRequired: bool.default(false).describe('Require NIP-42 AUTH before any REQ, COUNT or EVENT.'),
  authChallenge: z
    .enum(['demand', 'connect'])
    .default('demand')
    .describe(
      'When the NIP-42 challenge is sent: `demand` only with a refusal that authentication would lift (just before `CLOSED`/`OK false` `auth-required:`), `connect` as soon as a client connects (always so with auth_required).',
    ),
  maxInflightEvents: int(1, 4096)
    .default(16)
    .describe('EVENT/AUTH frames of one connection being verified or committed at once; further frames wait in its socket.'),
  maxOutboundBytes: int(65536).default(8388608).describe('Unsent bytes a connection may queue before it is cut off as a slow client.'),
  maxHttpBodyBytes: int(1024, 16 * 1024 * 1024)
    .default(65536)
    .describe(
      'Largest body of an HTTP request (only NIP-86 calls take one): a larger declared length gets 413 before anything is read, a chunked body is cut at it.',
    ),

  // --- signature verification ---
  verifyBackend: z.enum(['auto', 'native', 'wasm', 'js']).default('auto').describe('Schnorr backend: auto tries native libsecp256k1, then wasm, then pure JS.'),
  verifyWorkers: int(-1, 64).default(-1).describe('Verifier worker threads; -1 means one less than the CPU cores, 0 verifies on the main thread.'),

  // --- storage ---
  commitWindowMs: int(0, 1000)
    .default(2)
    .describe(
      'Group-commit window: writes arriving within it share one transaction (only under load: a write after a small or older commit is committed at once).',
    ),
  commitMaxBatch: int(1).default(1000).describe('Most events in one group commit.'),
  dbStartupCheck: z
    .enum(['auto', 'full', 'background', 'off'])
    .default('auto')
    .describe(
      'Integrity check (PRAGMA quick_check, ~2 ms per MiB) at start: full refuses a corrupt file before listening; background checks while serving and fails /ready if it finds damage; auto = full up to 1 GiB, else background.',
    ),
  syncMode: z.enum(['full', 'normal']).default('full').describe('SQLite synchronous mode; full fsyncs each commit so OK true survives power loss.'),
  warmupMs: int(0, 10000)
    .default(500)
    .describe(
      'Start-up warm-up budget (ms): before listening, synthetic read-only agents are served over loopback through the real connection path and the hot index pages are touched, so the first clients meet a warm process; 0 turns it off.',
    ),
  expirySweepSeconds: int(1).default(60).describe('How often expired events (NIP-40) are deleted from disk.'),

  // --- federation (issue 21): NIP-77 and replication ---
  negentropyMaxRecords: int(0)
    .default(500000)
    .describe(
      'NIP-77: most events one NEG-OPEN may reconcile; a filter matching more gets NEG-ERR blocked: (0 turns NIP-77 off). Advertised in NIP-11 as limitation.max_negentropy_records.',
    ),
  negentropyMaxSessions: int(1).default(4).describe('NIP-77 sessions open at once on one connection (a NEG-OPEN past it gets NEG-ERR blocked:).'),
  negentropyMaxTotalRecords: int(1)
    .default(2000000)
    .describe('Events held by all open NIP-77 sessions of all connections together (40 bytes each); a NEG-OPEN past it gets NEG-ERR blocked:.'),
  negentropyFrameBytes: int(4096)
    .default(65536)
    .describe('Largest NIP-77 message the relay writes, in bytes before hex encoding; what does not fit follows in later rounds.'),
  negentropyIdleSeconds: int(1).default(60).describe('A NIP-77 session without a message for this long is closed (NEG-ERR closed:).'),
  replicateFrom: z
    .string()
    .default('')
    .refine((v) => v.split(',').every((u) => u.trim() === '' || /^wss?:\/\/[^\s]+$/.test(u.trim())), 'each upstream must be a ws:// or wss:// URL')
    .describe(
      "Upstream relays to replicate from, comma-separated ws(s):// URLs: each is read by sequence cursor in tail mode (Roost's sequence extension) and its events are verified and stored here; the cursor per upstream is kept in the database (docs/federation.md).",
    ),
  replicateFilter: z
    .string()
    .default('')
    .refine((v) => v === '' || isJsonObject(v), 'must be a JSON filter object, e.g. {"kinds":[1]}')
    .describe('JSON filter applied to what is replicated from every upstream (no seq fields); empty replicates everything the upstream lets this relay read.'),
  replicateFirstSync: z
    .enum(['cursor', 'negentropy'])
    .default('cursor')
    .describe(
      "How an upstream is read the first time (no cursor yet, or its history was reset): 'cursor' tails it from sequence 0; 'negentropy' reconciles with NIP-77 first and fetches only the events missing here (for a replica seeded from a backup or a copy), then tails from the upstream's newest sequence number.",
    ),
  replicaReaders: pubkeyList().describe(
    "Comma-separated pubkeys (hex or npub) of replica relays allowed to read private kinds here: a connection authenticated (NIP-42) as one of them is served every private event, as their author or recipient would be. Give it the replica's NIP-11 `pubkey`.",
  ),

  // --- mailbox (issue 3) ---
  mailboxPrivateKinds: z
    .string()
    .default('')
    .superRefine((v, c) => {
      const r = parseKindList(v);
      if (!r.ok) c.addIssue({ code: 'custom', message: r.error });
    })
    .describe('Kinds served only to their author or a p-tagged recipient, besides 4 and 1059 (comma-separated, e.g. Roost mailbox kinds).'),
  mailboxQuota: int(0)
    .default(10000)
    .describe('Most undelivered events addressed (p tag) to one recipient; further regular events to it get OK false rate-limited (0: no quota).'),
  mailboxFreshSeconds: int(1)
    .default(86400)
    .describe(
      "A sender with no event stored here at least this long ago is a fresh key: once a mailbox is half full, fresh strangers' mail to it is refused (the other half is for established strangers and, beyond the quota, contacts).",
    ),
  mailboxFlushMs: int(10, 60000).default(1000).describe('How often per-agent delivery accounting is written to disk, coalesced.'),
  retention: z
    .string()
    .default('')
    .superRefine((v, c) => {
      const r = parseRetention(v);
      if (!r.ok) c.addIssue({ code: 'custom', message: r.error });
    })
    .describe(
      'Retention by kind and age (created_at), first matching rule wins: comma-separated KINDS:AGE, KINDS being *, a kind or a range a-b joined with +, AGE in seconds or with a unit s, m, h, d, w or y (365d). Empty keeps everything. Advertised in NIP-11.',
    ),
  retentionKeepUndelivered: bool
    .default(true)
    .describe('Retention never removes an event still undelivered to a p-tagged agent that has authenticated here (the quota bounds those instead).'),
  retentionSweepSeconds: int(1).default(300).describe('How often the retention rules are applied.'),

  // --- shared documents (issue 5) ---
  crdtMembership: z
    .enum(['off', 'tagged', 'all'])
    .default('tagged')
    .describe(
      "Refuse shared-document events (kinds 4337, 24337, 34338) from non-members of the document's stored membership record (kind 34337): 'tagged' for records carrying [\"enforce\",\"members\"], 'all' for every document (a document without a record then takes no writes), 'off' never.",
    ),
  crdtCompaction: z
    .enum(['off', 'owner', 'members'])
    .default('owner')
    .describe(
      "When a complete snapshot (kind 34338) is stored from the document's owner ('owner') or from any member of its stored record ('members'), the deltas stored before it that its state vector covers expire after the grace period below; 'off' keeps every delta.",
    ),
  crdtCompactionGraceSeconds: int(0).default(86400).describe('How long deltas covered by a trusted snapshot stay readable before they expire (NIP-40 sweep).'),

  // --- push wake (issue 10) ---
  pushApnsKeyFile: z.string().default('').describe('APNs token-auth signing key (.p8 file); empty leaves APNs wake off.'),
  pushApnsKeyId: z.string().default('').describe('Key ID of the APNs signing key.'),
  pushApnsTeamId: z.string().default('').describe('Apple developer team ID that owns the APNs signing key.'),
  pushApnsHost: z
    .string()
    .default('')
    .describe("APNs host; empty picks Apple's sandbox or production host per registration (set it to test against a local server)."),
  pushApnsPort: int(1, 65535).default(443).describe('Port of the APNs host (Apple uses 443).'),
  pushApnsCaFile: z.string().default('').describe('PEM file of CA certificates trusted for APNs instead of the system ones (local test servers).'),
  pushFcmServiceAccountFile: z
    .string()
    .default('')
    .describe('Firebase service-account JSON file (its token_uri is honoured); with no access token either, FCM wake is off.'),
  pushFcmAccessToken: z.string().default('').describe('Fixed OAuth access token for FCM, used instead of a service account (local test servers).'),
  pushFcmProjectId: z.string().default('').describe('Firebase project ID; empty takes project_id from the service-account file.'),
  pushFcmEndpoint: z.string().default('').describe('FCM origin to send to, http(s)://host[:port] (no path); empty means https://fcm.googleapis.com.'),
  pushFcmCaFile: z.string().default('').describe('PEM file of CA certificates trusted for the FCM endpoint and token_uri instead of the system ones.'),
  pushMinIntervalSeconds: int(0).default(30).describe('Least time between two wakes of one agent.'),
  pushAgentWakesPerHour: int(1).default(60).describe('Most wakes one agent receives per hour.'),
  pushGlobalSendsPerSecond: int(1).default(100).describe('Most push requests per second, all agents together.'),
  pushMaxInFlight: int(1).default(32).describe('Most push requests awaiting an answer at once.'),
  pushMaxAttempts: int(1).default(8).describe('Attempts per device before a wake is given up (429, 5xx and network errors are retried).'),
  pushRetryBaseMs: int(1).default(1000).describe('First retry delay; doubles with each attempt, with full jitter, and never undercuts a Retry-After.'),
  pushRetryMaxMs: int(1).default(300000).describe('Longest backoff delay between two attempts.'),
  pushRequestTimeoutMs: int(100).default(10000).describe("Time allowed for one APNs request (firebase-admin's FCM requests time out after 15 s)."),
  pushWakeTtlSeconds: int(1).default(3600).describe('A wake not delivered within this time is dropped; also sent as the APNs expiration and FCM TTL.'),
  pushAlertTitle: z
    .string()
    .default('Roost')
    .describe('Title of the generic visible notification (APNs alert, FCM notification) for agents that registered the alert wake mode.'),
  pushAlertBody: z.string().default('New activity').describe('Body of that notification; it never carries event content.'),

  // --- operator (issue 7) ---
  adminPubkeys: z
    .string()
    .default('')
    .refine(
      (v) => v.split(',').every((k) => k.trim() === '' || /^([0-9a-f]{64}|npub1[02-9ac-hj-np-z]{58})$/.test(k.trim())),
      'each admin key must be 64 hex characters or an npub',
    )
    .describe('Comma-separated admin pubkeys (hex or npub) allowed to call the NIP-86 management API.'),
  adminToken: z
    .string()
    .default('')
    .describe('Secret token for /dashboard (cookie, ?token= or Bearer); empty serves the dashboard to anyone who can reach it.'),
  metricsToken: z.string().default('').describe('Bearer token required by /metrics; empty leaves it open.'),
  dashboard: bool.default(true).describe('Serve the live operator dashboard at /dashboard.'),
  writePolicy: z
    .enum(['open', 'allow-list', 'authenticated'])
    .default('open')
    .describe('Who may publish: anyone, only pubkeys on the NIP-86 allow list (and admins), or only NIP-42 authenticated connections.'),
  trustProxy: z
    .string()
    .default('loopback,linklocal,uniquelocal')
    .describe(
      "Proxies whose X-Forwarded-For is believed for client IPs: 'true', 'false', a hop count, or comma-separated addresses, CIDRs and the names loopback/linklocal/uniquelocal.",
    ),
  rateLimit: bool.default(true).describe('Master switch of the per-IP and per-pubkey rate limits below (each also off when 0).'),
  rateConnectionsPerIp: int(0).default(60).describe('New WebSocket connections per IP per minute (token bucket holding one minute).'),
  rateConnectionsPerLoopback: int(0)
    .default(6000)
    .describe(
      'New WebSocket connections per minute from a loopback address (127.0.0.0/8, ::1) in place of the per-IP rate, so a local mesh of agents can start at once; clients behind a trusted proxy count by their forwarded address.',
    ),
  rateEventsPerIp: int(0).default(3000).describe('EVENT messages per IP per minute.'),
  rateEventsPerPubkey: int(0)
    .default(1200)
    .describe('EVENT messages per author pubkey per minute (charged at admission; given back when the signature fails or the event is a duplicate).'),
  rateReqsPerIp: int(0).default(3000).describe('REQ and COUNT messages per IP per minute.'),
  rateReqsPerPubkey: int(0).default(1200).describe('REQ and COUNT messages per authenticated pubkey per minute.'),
  rateHttpPerIp: int(0)
    .default(600)
    .describe('Plain HTTP requests (NIP-11, NIP-86, /metrics, /health, /presence, the dashboard; not WebSocket upgrades) per IP per minute.'),
  iceServers: z
    .union([z.string().transform(parseIceServersSetting), z.array(z.unknown())])
    .pipe(iceServersSchema)
    .default([])
    .describe(
      "STUN/TURN servers advertised in NIP-11 `ice_servers` for agents' direct links: a JSON array of {urls, username, credential}, or comma-separated stun:/turn: URLs. Anyone can read them: use short-lived TURN credentials.",
    ),
});

/** The validated, frozen relay configuration. */
export type RelayConfig = Readonly<z.infer<typeof configSchema>>;

/** Input accepted by {@link loadConfig}: any subset of keys, strings allowed (from env or flags). */
export type ConfigInput = Partial<Record<keyof z.input<typeof configSchema>, unknown>>;

/** Internal failures carry a stable code; tests assert the code. */
export class RoostError extends Error {
  constructor(
    readonly code: `ROOST_ERR_${string}`,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'RoostError';
  }
}

function envName(key: string): string {
  if (key === 'port' || key === 'host') return key.toUpperCase();
  // the OpenTelemetry settings keep their standard names (OTEL_*)
  if (key.startsWith('otel')) return key.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase();
  return 'ROOST_' + key.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase();
}

function flagName(key: string): string {
  return '--' + key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}

/** The values an enumerated key accepts (booleans included), or undefined for free-form keys. */
function getAllowedValues(schema: z.ZodType): readonly string[] | undefined {
  let s: z.ZodType = schema;
  while (s instanceof z.ZodDefault || s instanceof z.ZodOptional) s = s.def.innerType as z.ZodType;
  if (s instanceof z.ZodEnum) return s.options as string[];
  if (s === bool) return ['true', 'false', '1', '0', 'yes', 'no'];
  return undefined;
}

/** Every key with its environment name, flag, default, description and allowed values (for the README and --help). */
export function describeConfig(): Array<{ key: string; env: string; flag: string; default: unknown; description: string; allowed?: readonly string[] }> {
  const out = [];
  for (const [key, schema] of Object.entries(configSchema.shape)) {
    const s = schema as z.ZodDefault<z.ZodType>;
    const allowed = getAllowedValues(s);
    out.push({
      key,
      env: envName(key),
      flag: flagName(key),
      default: s.def.defaultValue,
      description: s.description ?? '',
      ...(allowed ? { allowed } : {}),
    });
  }
  return out;
}

/** What a setting accepts, in words, from the zod issue it failed. */
function describeAllowed(issue: z.core.$ZodIssue, schema: z.ZodType | undefined): string {
  const allowed = schema ? getAllowedValues(schema) : undefined;
  if (allowed) return `allowed: ${allowed.join(', ')}`;
  switch (issue.code) {
    case 'too_small':
      return `must be at least ${String(issue.minimum)}`;
    case 'too_big':
      return `must be at most ${String(issue.maximum)}`;
    case 'invalid_type':
      return issue.expected === 'number' ? 'must be a number' : `must be a ${issue.expected}`;
    default:
      return issue.message;
  }
}

/** Validates the given settings; throws ROOST_ERR_CONFIG naming the environment variable and flag of every bad key, its value and what is allowed. */
export function loadConfig(input: ConfigInput = {}): RelayConfig {
  const r = configSchema.safeParse(input);
  if (!r.success) {
    const detail = r.error.issues
      .map((i) => {
        const key = i.path[0];
        if (typeof key !== 'string' || !(key in configSchema.shape)) return `${i.path.join('.') || '(root)'}: ${i.message}`;
        const schema = configSchema.shape[key as keyof typeof configSchema.shape] as z.ZodType;
        return `${envName(key)} / ${flagName(key)} = ${JSON.stringify(input[key as keyof ConfigInput])}: ${describeAllowed(i, schema)}`;
      })
      .join('; ');
    throw new RoostError('ROOST_ERR_CONFIG', `invalid configuration: ${detail}`);
  }
  return Object.freeze(r.data);
}

/** Short flags: `roost relay --replicate-from ws://a/ --filter '{"kinds":[1]}'`. */
const FLAG_ALIASES: Record<string, string> = { '--filter': '--replicate-filter' };

/** Reads settings from the environment and `--flag value` / `--flag=value` arguments (flags win). */
export function readConfigSources(env: NodeJS.ProcessEnv = process.env, argv: readonly string[] = []): ConfigInput {
  const input: Record<string, unknown> = {};
  const byFlag = new Map<string, string>();
  for (const key of Object.keys(configSchema.shape)) {
    const v = env[envName(key)];
    if (v !== undefined && v !== '') input[key] = v;
    byFlag.set(flagName(key), key);
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new RoostError('ROOST_ERR_CONFIG', `unexpected argument ${JSON.stringify(arg)}`);
    const eq = arg.indexOf('=');
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const key = byFlag.get(FLAG_ALIASES[flag] ?? flag);
    if (!key) throw new RoostError('ROOST_ERR_CONFIG', `unknown flag ${flag}`);
    let value: string | undefined;
    if (eq > 0) value = arg.slice(eq + 1);
    else {
      value = argv[i + 1];
      if (value === undefined || value.startsWith('--')) value = 'true';
      else i++;
    }
    input[key] = value;
  }
  return input;
}
