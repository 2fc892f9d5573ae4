import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

/** A throwaway PostgreSQL server on a loopback port, its files in a temporary folder. */
export interface PgServer {
  /** Connection string of the `postgres` database (for administration). */
  adminUrl: string;
  port: number;
  /** Creates an empty database and returns its connection string. */
  createDatabase(): Promise<string>;
  /** Stops the server and removes its folder. */
  stop(): Promise<void>;
}

/** The folder holding initdb/pg_ctl of the newest PostgreSQL installed, if any. */
export function findPostgresBin(): string | undefined {
  if (process.env.ROOST_PG_BIN) return process.env.ROOST_PG_BIN;
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(root, versions[0], 'bin');
}

/**
 * Why PostgreSQL tests cannot run here, or undefined when they can. In CI the binaries must be
 * there (scripts/install-system-deps.sh installs them): missing ones fail the suite instead.
 */
export function postgresSkipReason(): string | undefined {
  if (findPostgresBin()) return undefined;
  if (process.env.CI) throw new Error('PostgreSQL binaries are missing in CI: scripts/install-system-deps.sh installs postgresql');
  return 'PostgreSQL binaries not found (apt-get install postgresql, or set ROOST_PG_BIN): skipping the PostgreSQL store tests';
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Runs a PostgreSQL binary as the `postgres` user when this process is root (servers refuse root). */
function runPg(bin: string, args: string[], asUser: boolean): void {
  const cmd = asUser ? 'runuser' : bin;
  const argv = asUser ? ['-u', 'postgres', '--', bin, ...args] : args;
  const r = spawnSync(cmd, argv, { encoding: 'utf8', cwd: '/' });
  if (r.status !== 0) throw new Error(`${bin.split('/').pop()} ${args[0] ?? ''} failed (${r.status}): ${r.stderr || r.stdout}`);
}

/**
 * Starts a server for one test file: initdb in a temporary folder, listening on 127.0.0.1 only with
 * its socket in that folder, trust authentication, C locale. Durability settings are PostgreSQL's
 * defaults unless `fast` (fsync off: for tests that never crash the server itself).
 */
export async function startPostgres(opts: { fast?: boolean } = {}): Promise<PgServer> {
  const bin = findPostgresBin();
  if (!bin) throw new Error('PostgreSQL binaries not found');
  const asUser = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), 'roost-pg-'));
  if (asUser) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(dir, uid, gid);
  }
  const data = join(dir, 'data');
  runPg(join(bin, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--locale=C', '--no-sync'], asUser);
  const port = await freePort();
  const settings = [
    `-p ${port}`,
    "-c listen_addresses='127.0.0.1'",
    `-c unix_socket_directories='${dir}'`,
    '-c max_connections=200',
    '-c shared_buffers=32MB',
    ...(opts.fast ? ['-c fsync=off', '-c synchronous_commit=off', '-c full_page_writes=off'] : []),
  ].join(' ');
  runPg(join(bin, 'pg_ctl'), ['-D', data, '-l', join(dir, 'server.log'), '-o', settings, '-w', '-t', '60', 'start'], asUser);
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  let n = 0;
  let stopped = false;
  // A file that never stops its server (or a worker that dies) must not leave it running: pg_ctl stop is synchronous.
  process.once('exit', () => {
    if (!stopped) void server.stop().catch(() => undefined);
  });
  const server: PgServer = {
    adminUrl,
    port,
    async createDatabase() {
      const name = `roost_${process.pid}_${++n}`;
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE ${name}`);
      } finally {
        await c.end();
      }
      return `postgres://postgres@127.0.0.1:${port}/${name}`;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      try {
        runPg(join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop'], asUser);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
  return server;
}
