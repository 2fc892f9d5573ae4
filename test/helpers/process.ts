import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { waitFor } from './wait.js';

/** The repository root (tests run from it). */
export const ROOT = process.cwd();

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** A Node script running as a child process, its output collected. */
export interface ScriptProcess {
  child: ChildProcess;
  /** Everything it wrote to stdout and stderr so far. */
  output: () => string;
  /** Resolves with the exit code once the process ended. */
  exited: Promise<number | null>;
}

/** Runs `node <script>` with `env` added to this process's environment. */
export function spawnScript(script: string, env: Record<string, string>): ScriptProcess {
  const child = spawn(process.execPath, [script], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

/** A relay running as its own process from dist/, as users run it. */
export interface RelayProcess {
  child: ChildProcess;
  url: string;
  port: number;
  output: () => string;
  /** Resolves with the exit code once the process ended. */
  exited: Promise<number | null>;
}

/** Starts `node dist/relay/main.js` (or `main`, another build's) with the given environment and waits for its ready line. */
export async function spawnRelay(env: Record<string, string>, args: string[] = [], main = join(ROOT, 'dist/relay/main.js')): Promise<RelayProcess> {
  if (!existsSync(main)) throw new Error(`${main} is missing: run \`npm run build\` (npm test does)`);
  const port = env.PORT ? Number(env.PORT) : await freePort();
  const child = spawn(process.execPath, [main, ...args], {
    env: { ...process.env, HOST: '127.0.0.1', ROOST_LOG_LEVEL: 'info', ROOST_RATE_LIMIT: 'false', ROOST_WARMUP_MS: '0', ...env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let dead = false;
  void exited.then(() => (dead = true));
  await waitFor(() => dead || out.includes('Roost relay listening on'), 'relay process ready', 20_000);
  if (dead) throw new Error(`relay process exited early:\n${out}`);
  return { child, url: `ws://127.0.0.1:${port}`, port, output: () => out, exited };
}
