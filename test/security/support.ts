import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type RelayProcess, spawnRelay } from '../helpers/process.js';

/** A relay process from dist/ on a fresh database, for attacks over real sockets. */
export interface AttackedRelay extends RelayProcess {
  dir: string;
  httpUrl: string;
  /** Reads one series of the relay's /metrics (the first sample of that name). */
  metric(name: string): Promise<number>;
  /** Stops the relay (SIGTERM) and removes its folder. */
  stop(): Promise<void>;
}

/**
 * The relay build under attack: this tree's dist/, or ROOST_SECURITY_DIST (another build's dist/, e.g. of the
 * commit before a fix in a throwaway worktree) to check that a test fails without the fix.
 */
export const TARGET_MAIN = process.env.ROOST_SECURITY_DIST ? resolve(process.env.ROOST_SECURITY_DIST, 'relay/main.js') : undefined;

/** Spawns `node dist/relay/main.js` (as users run it) on a fresh database with extra environment. */
export async function spawnTarget(env: Record<string, string> = {}, args: string[] = []): Promise<AttackedRelay> {
  const dir = mkdtempSync(join(tmpdir(), 'roost-sec-'));
  const p = await spawnRelay({ ROOST_DB: join(dir, 'roost.db'), ...env }, args, TARGET_MAIN);
  return {
    ...p,
    dir,
    httpUrl: `http://127.0.0.1:${p.port}`,
    async metric(name) {
      const text = await (await fetch(`http://127.0.0.1:${p.port}/metrics`)).text();
      const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
      if (line === undefined) throw new Error(`metric ${name} not exposed`);
      return Number(line.slice(line.lastIndexOf(' ') + 1));
    },
    async stop() {
      if (p.child.exitCode === null) {
        p.child.kill('SIGTERM');
        await p.exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Starts the relay process with its process metrics (event-loop lag, RSS) exposed on /metrics. */
export const startAttackedRelay = spawnTarget;

/** The relay's JSON log lines so far (pino writes one object per line). */
export function logLines(p: RelayProcess): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const line of p.output().split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // a partial line still being written
    }
  }
  return out;
}
