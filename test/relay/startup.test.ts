import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ROOT, freePort, spawnRelay } from '../helpers/process.js';

const MAIN = join(ROOT, 'dist/relay/main.js');
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tmp(): string {
  const dir = mkdtempSync(join(tmpdir(), 'roost-startup-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs the relay process to its exit (for start-up failures). */
function runToExit(env: Record<string, string>, args: string[] = []) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { env: { ...process.env, ROOST_LOG_LEVEL: 'info', ...env }, timeout: 20_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('relay start-up mistakes: one coded line, before the database is touched', () => {
  it('an unresolvable HOST', async () => {
    const dir = tmp();
    const r = await runToExit({ HOST: 'no-such-host.invalid', PORT: '0', ROOST_DB: join(dir, 'data', 'r.db') });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^roost: cannot start: HOST \/ --host = "no-such-host.invalid" does not resolve .*\(ROOST_ERR_HOST\)\n$/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a port already in use', async () => {
    const dir = tmp();
    const port = await freePort();
    const other: Server = createServer();
    await new Promise<void>((r) => other.listen(port, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => other.close(r)));
    const r = await runToExit({ HOST: '127.0.0.1', PORT: String(port), ROOST_DB: join(dir, 'r.db') });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      `roost: cannot start: port ${port} on 127.0.0.1 is already in use; stop the other process or choose another PORT / --port (ROOST_ERR_PORT_IN_USE)\n`,
    );
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a second relay on the same database refuses; a lock left by SIGKILL does not block a restart', async () => {
    const db = join(tmp(), 'r.db');
    const first = await spawnRelay({ ROOST_DB: db });
    cleanups.push(() => first.child.kill('SIGKILL'));
    const second = await runToExit({ HOST: '127.0.0.1', PORT: String(await freePort()), ROOST_DB: db });
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(new RegExp(`database .*r\\.db is in use by another relay \\(pid ${first.child.pid}, .*\\(ROOST_ERR_DB_LOCKED\\)\\n$`));
    first.child.kill('SIGKILL');
    await first.exited;
    const third = await spawnRelay({ ROOST_DB: db });
    third.child.kill('SIGTERM');
    expect(await third.exited).toBe(0);
  });

  it('configuration errors name the variable and flag, echo the value and say what is allowed; --help lists enumerated values', async () => {
    const r = await runToExit({ PORT: 'seven', ROOST_DB: join(tmp(), 'r.db') }, ['--log-level', 'loud']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'roost: invalid configuration: PORT / --port = "seven": must be a number; ROOST_LOG_LEVEL / --log-level = "loud": allowed: fatal, error, warn, info, debug, trace, silent (ROOST_ERR_CONFIG)\n',
    );
    const help = await new Promise<string>((resolve) =>
      execFile(process.execPath, [join(ROOT, 'dist/cli/main.js'), 'relay', '--help'], (_e, out) => resolve(out)),
    );
    expect(help).toMatch(/--log-level .*\n.*\n\s+allowed: fatal, error, warn, info, debug, trace, silent\n/);
    expect(help).toMatch(/--verify-backend .*\n.*\n\s+allowed: auto, native, wasm, js\n/);
  });
});
