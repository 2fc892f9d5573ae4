import { lookup } from 'node:dns/promises';
import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, resolve } from 'node:path';
import { RoostError } from './config.js';

/** Fails with ROOST_ERR_HOST when HOST does not resolve to an address of this machine's resolver. */
export async function checkHost(host: string): Promise<void> {
  try {
    await lookup(host);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown';
    throw new RoostError('ROOST_ERR_HOST', `HOST / --host = ${JSON.stringify(host)} does not resolve (${code}); use an address such as 0.0.0.0 or 127.0.0.1`);
  }
}

/** Binds and releases host:port once, so a taken port fails before the database is opened (ROOST_ERR_PORT_IN_USE / ROOST_ERR_LISTEN). */
export async function checkPort(host: string, port: number): Promise<void> {
  if (port === 0) return;
  await new Promise<void>((done, fail) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => fail(describeListenError(err, host, port)));
    server.listen({ port, host, exclusive: true }, () => server.close(() => done()));
  });
}

/** A listen failure as one coded, actionable error. */
export function describeListenError(err: NodeJS.ErrnoException, host: string, port: number): RoostError {
  if (err.code === 'EADDRINUSE')
    return new RoostError('ROOST_ERR_PORT_IN_USE', `port ${port} on ${host} is already in use; stop the other process or choose another PORT / --port`);
  if (err.code === 'EACCES')
    return new RoostError('ROOST_ERR_LISTEN', `no permission to listen on port ${port} (ports below 1024 need privileges); set PORT / --port`);
  if (err.code === 'EADDRNOTAVAIL')
    return new RoostError('ROOST_ERR_HOST', `HOST / --host = ${JSON.stringify(host)} is not an address of this machine; use 0.0.0.0 or 127.0.0.1`);
  return new RoostError('ROOST_ERR_LISTEN', `cannot listen on ${host}:${port}: ${err.code ?? err.message}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes `<db>.lock` for this process's life: group commit, sequence tailing and the wake queue assume one writer.
 * The file holds the owner's pid; a lock whose pid is dead (or is our own, as PID 1 in a restarted container) is
 * stale after a SIGKILL and is taken over. Throws ROOST_ERR_DB_LOCKED while another live relay holds it.
 * Returns the release function (also run at process exit).
 */
export function lockDatabase(db: string): () => void {
  if (db === ':memory:' || db === '') return () => undefined;
  const path = `${resolve(db)}.lock`;
  mkdirSync(dirname(path), { recursive: true });
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o644);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      const release = () => {
        try {
          if (readFileSync(path, 'utf8').trim() === String(process.pid)) unlinkSync(path);
        } catch {
          // already gone
        }
      };
      process.once('exit', release);
      return release;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let owner = Number.NaN;
    try {
      owner = Number.parseInt(readFileSync(path, 'utf8'), 10);
    } catch {
      continue; // removed between our open and read: try again
    }
    if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && isAlive(owner))
      throw new RoostError(
        'ROOST_ERR_DB_LOCKED',
        `database ${db} is in use by another relay (pid ${owner}, lock ${path}); stop it, or give this relay its own ROOST_DB / --db`,
      );
    try {
      unlinkSync(path);
    } catch {
      // another starter removed it first
    }
  }
  throw new RoostError('ROOST_ERR_DB_LOCKED', `could not take the lock ${path}`);
}
