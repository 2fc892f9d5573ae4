import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type RelayProcess, spawnRelay } from '../helpers/process.js';

/** A relay process from dist/ on a fresh database, for attacks over real sockets. */
export interface AttackedRelay extends RelayProcess {
  /** Reads one series of the relay's /metrics (the first sample of that name). */
  metric(name: string): Promise<number>;
  stop(): Promise<void>;
}

/** Starts the relay process with its process metrics (event-loop lag, RSS) exposed on /metrics. */
export async function startAttackedRelay(env: Record<string, string> = {}, args: string[] = []): Promise<AttackedRelay> {
  const dir = mkdtempSync(join(tmpdir(), 'roost-sec-'));
  const p = await spawnRelay({ ROOST_DB: join(dir, 'relay.db'), ...env }, args);
  return {
    ...p,
    async metric(name) {
      const text = await (await fetch(`http://127.0.0.1:${p.port}/metrics`)).text();
      const line = text.split('\n').find((l) => l.startsWith(name + ' ') || l.startsWith(name + '{'));
      if (line === undefined) throw new Error(`metric ${name} not exposed`);
      return Number(line.slice(line.lastIndexOf(' ') + 1));
    },
    async stop() {
      p.child.kill('SIGTERM');
      await p.exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
