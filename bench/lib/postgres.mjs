// A throwaway PostgreSQL server for the cluster benchmark: initdb in a temporary folder, loopback
// only, its socket in that folder, PostgreSQL's default durability (fsync and synchronous_commit on,
// as SQLite runs with synchronous=FULL). Run as the `postgres` user when the harness is root.
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UsageError } from './relay-process.mjs';

/** initdb's folder for the newest PostgreSQL installed, or null. */
export function findPostgresBin() {
  if (process.env.ROOST_PG_BIN) return process.env.ROOST_PG_BIN;
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const v = readdirSync(root)
    .filter((d) => existsSync(join(root, d, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a))[0];
  return v ? join(root, v, 'bin') : null;
}

function run(bin, args, asUser) {
  const r = spawnSync(asUser ? 'runuser' : bin, asUser ? ['-u', 'postgres', '--', bin, ...args] : args, { encoding: 'utf8', cwd: '/' });
  if (r.status !== 0) throw new Error(`${bin} failed: ${r.stderr || r.stdout}`);
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Starts a server; returns `{ port, url(db), createDatabase(name), pids(), stop() }`. */
export async function startPostgresServer() {
  const bin = findPostgresBin();
  if (!bin) throw new UsageError('--store postgres needs PostgreSQL (apt-get install postgresql, or set ROOST_PG_BIN)');
  const asUser = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), 'roost-bench-pg-'));
  if (asUser) chownSync(dir, Number(execFileSync('id', ['-u', 'postgres']).toString()), Number(execFileSync('id', ['-g', 'postgres']).toString()));
  const data = join(dir, 'data');
  run(join(bin, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--locale=C', '--no-sync'], asUser);
  const port = await freePort();
  const opts = `-p ${port} -c listen_addresses='127.0.0.1' -c unix_socket_directories='${dir}' -c max_connections=200 -c shared_buffers=128MB`;
  run(join(bin, 'pg_ctl'), ['-D', data, '-l', join(dir, 'server.log'), '-o', opts, '-w', '-t', '60', 'start'], asUser);
  const url = (db) => `postgres://postgres@127.0.0.1:${port}/${db}`;
  return {
    port,
    url,
    async createDatabase(name) {
      const pg = (await import('pg')).default;
      const c = new pg.Client({ connectionString: url('postgres') });
      await c.connect();
      await c.query(`CREATE DATABASE ${name}`);
      await c.end();
      return url(name);
    },
    /** The postmaster and its children (backends, writer, WAL writer…): their CPU is the database's. */
    pids() {
      const main = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
      const out = [main];
      try {
        for (const t of readdirSync(`/proc/${main}/task`)) {
          const kids = readFileSync(`/proc/${main}/task/${t}/children`, 'utf8').trim();
          if (kids) out.push(...kids.split(' ').map(Number));
        }
      } catch {
        /* gone */
      }
      return out;
    },
    stop() {
      try {
        run(join(bin, 'pg_ctl'), ['-D', data, '-m', 'fast', '-w', 'stop'], asUser);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
