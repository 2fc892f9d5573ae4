import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnRelay, type RelayProcess } from '../helpers/process.js';

/** A relay process on a fresh database, and how to stop it and remove its folder. */
export interface AttackedRelay extends RelayProcess {
  dir: string;
  httpUrl: string;
  stop(): Promise<void>;
}

/** Spawns `node dist/relay/main.js` (as users run it) on a fresh database with extra environment. */
export async function spawnTarget(env: Record<string, string> = {}, args: string[] = []): Promise<AttackedRelay> {
  const dir = mkdtempSync(join(tmpdir(), 'roost-sec-'));
  const p = await spawnRelay({ ROOST_DB: join(dir, 'roost.db'), ...env }, args);
  return {
    ...p,
    dir,
    httpUrl: `http://127.0.0.1:${p.port}`,
    async stop() {
      if (p.child.exitCode === null) {
        p.child.kill('SIGTERM');
        await p.exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

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
