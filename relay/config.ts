import { z } from 'zod';
import { iceServersSchema, parseIceServersSetting } from '../shared/ice-servers.js';

/**
 * Every relay setting, declared once with its default and description. Only this module reads
 * `process.env`; the result is validated once and frozen. Environment name: ROOST_<KEY_IN_SNAKE_CASE>,
 * except `port` (PORT) and `host` (HOST). Command-line flags use --kebab-case.
 */
const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);
const bool = z.union([z.boolean(), z.enum(['true', 'false', '1', '0', 'yes', 'no']).transform((v) => v === 'true' || v === '1' || v === 'yes')]);

export const configSchema = z.object({
  // --- server ---
  port: int(0, 65535).default(7447).describe('TCP port to listen on (env PORT).'),
  host: z.string().default('0.0.0.0').describe('Interface to bind (env HOST).'),
  db: z.string().default('./data/roost.db').describe('SQLite database file; its folder is created (env ROOST_DB).'),
  publicUrl: z.string().default('').describe('Public ws(s):// URL of this relay, used to check NIP-42 AUTH; empty accepts the Host header the client used.'),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe('Log level (pino).'),

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
  maxOutboundBytes: int(65536).default(8388608).describe('Unsent bytes a connection may queue before it is cut off as a slow client.'),

  // --- storage ---
  commitWindowMs: int(0, 1000).default(2).describe('Group-commit window: writes arriving within it share one transaction.'),
  commitMaxBatch: int(1).default(1000).describe('Most events in one group commit.'),
  syncMode: z.enum(['full', 'normal']).default('full').describe('SQLite synchronous mode; full fsyncs each commit so OK true survives power loss.'),
  expirySweepSeconds: int(1).default(60).describe('How often expired events (NIP-40) are deleted from disk.'),

  // --- mailbox (issue 3) ---

  // --- push wake (issue 10) ---

  // --- operator (issue 7) ---
  iceServers: z
    .union([z.string().transform(parseIceServersSetting), z.array(z.unknown())])
    .pipe(iceServersSchema)
    .default([])
    .describe(
      'STUN/TURN servers advertised in NIP-11 `ice_servers` for agents\' direct links: a JSON array of {urls, username, credential}, or comma-separated stun:/turn: URLs. Anyone can read them: use short-lived TURN credentials.',
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
  return 'ROOST_' + key.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase();
}

function flagName(key: string): string {
  return '--' + key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}

/** Every key with its environment name, flag, default and description (for the README and --help). */
export function describeConfig(): Array<{ key: string; env: string; flag: string; default: unknown; description: string }> {
  const out = [];
  for (const [key, schema] of Object.entries(configSchema.shape)) {
    const s = schema as z.ZodDefault<z.ZodType>;
    out.push({
      key,
      env: envName(key),
      flag: flagName(key),
      default: s.def.defaultValue,
      description: s.description ?? '',
    });
  }
  return out;
}

/** Validates the given settings; throws ROOST_ERR_CONFIG naming every bad key. */
export function loadConfig(input: ConfigInput = {}): RelayConfig {
  const r = configSchema.safeParse(input);
  if (!r.success) {
    const detail = r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new RoostError('ROOST_ERR_CONFIG', `invalid configuration: ${detail}`);
  }
  return Object.freeze(r.data);
}

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
    const key = byFlag.get(flag);
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
