// Relays under test: spawned as child processes on 127.0.0.1 (fresh temp database each time), or an
// external ws:// URL that the harness can only talk to. Every child is killed when the harness exits.
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, createWriteStream, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sleep } from './stats.mjs';

/** Repository root. */
export const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const children = new Set();

/** An error in how the harness was asked to run (bad flag, relay not built): printed without a stack. */
export class UsageError extends Error {}
const tempDirs = new Set();

function killAll() {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
  children.clear();
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    killAll();
    process.exit(130);
  });
}

/**
 * Relay kinds the harness can spawn. `script` is run with node from the repository root; `env` maps
 * the port and database file into that relay's own settings; `codeFiles` name what a database
 * snapshot depends on; `preloadEnv(file)` (optional) makes the child load a JSON-lines file itself.
 */
export const SPAWNABLE = {
  roost: {
    label: 'Roost',
    script: 'dist/relay/main.js',
    // Rate limits off: the load generator is one IP sending far more than a client would.
    env: (port, db) => ({ PORT: String(port), HOST: '127.0.0.1', ROOST_DB: db, ROOST_LOG_LEVEL: 'warn', ROOST_RATE_LIMIT: 'false' }),
    // A pre-loaded snapshot stays valid while the schema and the store code are unchanged.
    codeFiles: ['migrations', 'dist/relay/store'],
    // HOOK: a faster pre-load route (env for the child, like the peer's) may be added here; without
    // one, the harness pre-loads through the socket like any client.
    preloadEnv: null,
    // Settings for the relay that builds the pre-loaded database: the corpus mailbox holds 100,000
    // undelivered events for one agent, ten times the default mailbox quota.
    seedEnv: { ROOST_MAILBOX_QUOTA: '0' },
    missing: 'Roost is not built (dist/relay/main.js): run `npm run build`, or compare two peers with --subject nostr-relay',
  },
};
// Roost exporting every span over OTLP/HTTP to a sink in the harness process (which reads and drops
// them): `--subject roost-traced --peer roost` measures what tracing costs the relay, in one run.
// With the default sampler the relay traces only events whose sender sampled a trace (none in the
// corpora); `roost-traced-all` has it start a trace for every event (OTEL_TRACES_SAMPLER=parentbased_always_on),
// the most tracing can cost: a span (with its step events) per event, every one exported.
SPAWNABLE['roost-traced'] = {
  ...SPAWNABLE.roost,
  label: 'Roost (traces to OTLP)',
  env: (port, db) => ({ ...SPAWNABLE.roost.env(port, db), OTEL_TRACES_EXPORTER: 'otlp' }),
  otlpSink: true,
  // Its database is Roost's: the pre-loaded snapshot is shared (the variants differ only in tracing).
  snapshotAs: 'roost',
};
SPAWNABLE['roost-traced-all'] = {
  ...SPAWNABLE['roost-traced'],
  label: 'Roost (every event traced)',
  env: (port, db) => ({ ...SPAWNABLE['roost-traced'].env(port, db), OTEL_TRACES_SAMPLER: 'parentbased_always_on' }),
};
// The same, exporting OTLP JSON instead of the default protobuf (what the encoding costs).
SPAWNABLE['roost-traced-all-json'] = {
  ...SPAWNABLE['roost-traced-all'],
  label: 'Roost (every event traced, OTLP JSON)',
  env: (port, db) => ({ ...SPAWNABLE['roost-traced-all'].env(port, db), OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }),
};
Object.assign(SPAWNABLE, {
  'nostr-relay': {
    label: '@nostr-relay/core',
    script: 'bench/peers/nostr-relay-core.mjs',
    env: (port, db) => ({ PORT: String(port), HOST: '127.0.0.1', PEER_DB: db }),
    codeFiles: ['bench/peers/nostr-relay-core.mjs', 'node_modules/@nostr-relay/event-repository-sqlite/package.json'],
    // Through the socket the peer verifies ~400 events/s (pure-JS Schnorr), so its pre-load goes
    // straight to its repository at start-up (not measured).
    preloadEnv: (file) => ({ PEER_PRELOAD: file }),
    missing: 'bench/peers/nostr-relay-core.mjs is missing',
  },
});

let sinkUrl;
/**
 * An OTLP/HTTP collector on 127.0.0.1 that answers every export 200 and keeps nothing; started once.
 * It answers in the request's encoding, as a collector does: an empty ExportTraceServiceResponse is
 * an empty protobuf body or `{}`.
 */
async function startOtlpSink() {
  if (sinkUrl) return sinkUrl;
  const server = http.createServer((req, res) => {
    req.resume();
    const proto = String(req.headers['content-type']).startsWith('application/x-protobuf');
    req.on('end', () =>
      proto ? res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end() : res.writeHead(200, { 'content-type': 'application/json' }).end('{}'),
    );
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  server.unref();
  sinkUrl = `http://127.0.0.1:${server.address().port}`;
  return sinkUrl;
}

/**
 * What a spec names: `{ name, kind, root, label }` for a spawnable relay (`roost`, `roost:<checkout dir>`,
 * `nostr-relay`), or null for a ws:// URL.
 */
export function resolveSpec(spec) {
  if (/^wss?:\/\//.test(spec)) return null;
  const m = /^([a-z-]+)(?::(.+))?$/.exec(spec);
  const kind = m && SPAWNABLE[m[1]];
  if (!kind) throw new UsageError(`unknown relay ${JSON.stringify(spec)}: use roost, roost:<checkout dir>, nostr-relay or a ws:// URL`);
  const root = m[2] ? resolve(m[2]) : ROOT;
  return { name: m[1], kind, root, label: m[2] ? `${kind.label}@${basename(root)}` : kind.label };
}

/** Label of a target spec for tables. */
export function targetLabel(spec) {
  return resolveSpec(spec)?.label ?? spec;
}

/** Throws with a helpful message when a spec can neither be spawned nor reached by URL. */
export function checkTarget(spec) {
  const r = resolveSpec(spec);
  if (r && !existsSync(join(r.root, r.kind.script))) throw new UsageError(r.kind.missing);
}

async function freePort() {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

async function waitForPort(port, child, deadlineMs) {
  const until = Date.now() + deadlineMs;
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`relay exited with code ${child.exitCode} before listening`);
    const ok = await new Promise((res) => {
      const sock = net.connect({ port, host: '127.0.0.1' });
      sock.once('connect', () => {
        sock.destroy();
        res(true);
      });
      sock.once('error', () => res(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`relay did not accept connections on port ${port} within ${deadlineMs} ms`);
}

/** Resident set size of a process in KiB (VmRSS from /proc), or null when unavailable. */
export function readRssKiB(pid) {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/**
 * Starts a relay. Spawnable kinds get a fresh process and temp folder; `dbFrom` (a folder holding a
 * database snapshot `relay.db*`) is copied in first, `env` adds variables, `nodeArgs` go before the script
 * (e.g. `--cpu-prof`). A URL is returned as is
 * (`pid` null: its memory cannot be read). `stop({ keep })` ends the child (SIGTERM, then SIGKILL
 * after 5 s) and removes its folder unless `keep`.
 */
export async function startRelay(spec, { dbFrom, env: extraEnv = {}, nodeArgs = [], startTimeoutMs = 20_000 } = {}) {
  if (/^wss?:\/\//.test(spec)) {
    return { spec, label: spec, url: spec, pid: null, external: true, stop: async () => {} };
  }
  checkTarget(spec);
  const { kind, root, label } = resolveSpec(spec);
  const dir = mkdtempSync(join(tmpdir(), 'roost-bench-'));
  tempDirs.add(dir);
  if (dbFrom) for (const f of readdirSync(dbFrom)) if (f.startsWith('relay.db')) copyFileSync(join(dbFrom, f), join(dir, f));
  const port = await freePort();
  const logFile = join(dir, 'relay.log');
  const sink = kind.otlpSink ? { OTEL_EXPORTER_OTLP_ENDPOINT: await startOtlpSink() } : {};
  const env = { ...process.env, ...kind.env(port, join(dir, 'relay.db')), ...sink, ...extraEnv };
  const child = spawn(process.execPath, [...nodeArgs, join(root, kind.script)], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const log = createWriteStream(logFile, { flags: 'a' });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  try {
    await waitForPort(port, child, startTimeoutMs);
  } catch (err) {
    child.kill('SIGKILL');
    children.delete(child);
    await sleep(100);
    let tail = '';
    try {
      tail = readFileSync(logFile, 'utf8').slice(-2000);
    } catch {
      /* no log */
    }
    throw new Error(`${label}: ${err.message}\n${tail}`);
  }
  const stop = async ({ keep = false } = {}) => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(5000)]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    children.delete(child);
    if (!keep) {
      rmSync(dir, { recursive: true, force: true });
      tempDirs.delete(dir);
    }
    return dir;
  };
  return { spec, label, url: `ws://127.0.0.1:${port}`, pid: child.pid, external: false, dir, stop };
}

/** Forgets a kept folder (the caller now owns it). */
export function releaseDir(dir) {
  tempDirs.delete(dir);
}

let ticksPerSecond;

/**
 * CPU time (user + system, every thread) a process has used so far, in milliseconds, from
 * /proc/<pid>/stat; null when unavailable. Resolution is one clock tick (10 ms on Linux).
 */
export function readCpuMs(pid) {
  try {
    ticksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / ticksPerSecond;
  } catch {
    return null;
  }
}
