import { closeSync, constants, fchmodSync, mkdirSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { ClientError } from '../errors.js';
import { Identity } from '../identity.js';

/**
 * Key files (Node only): 64 hex characters and a newline, created with mode 0600 in one exclusive
 * open (no window in which another user could read it). A file that group or others can read is
 * refused with ROOST_ERR_KEY_FILE, as ssh does.
 */

/** Reads the identity in a key file. */
export function loadKeyFile(path: string): Identity {
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch (err) {
    throw new ClientError('ROOST_ERR_KEY_FILE', `cannot read key file ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`, {}, { cause: err });
  }
  if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
    throw new ClientError('ROOST_ERR_KEY_FILE', `key file ${path} is readable by others (mode ${(mode & 0o777).toString(8)}); run chmod 600 ${path}`);
  }
  const text = readFileSync(path, 'utf8');
  try {
    return Identity.fromSecretKey(text.trim());
  } catch (err) {
    throw new ClientError('ROOST_ERR_KEY_FILE', `key file ${path} does not hold a secret key`, {}, { cause: err });
  }
}

/** Writes a new key file (mode 0600); refuses to replace an existing one unless `overwrite`. */
export function saveKeyFile(path: string, identity: Identity, opts: { overwrite?: boolean } = {}): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const flags = constants.O_WRONLY | constants.O_CREAT | (opts.overwrite ? constants.O_TRUNC : constants.O_EXCL);
  let fd: number;
  try {
    fd = openSync(path, flags, 0o600);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ClientError(
      'ROOST_ERR_KEY_FILE',
      code === 'EEXIST' ? `key file ${path} already exists` : `cannot create key file ${path}: ${code ?? 'error'}`,
      {},
      { cause: err },
    );
  }
  try {
    fchmodSync(fd, 0o600);
    writeSync(fd, identity.exportSecretKeyHex() + '\n');
  } finally {
    closeSync(fd);
  }
}

/** Loads the key file, or creates it with a fresh identity when it does not exist. */
export function loadOrCreateKeyFile(path: string): { identity: Identity; created: boolean } {
  try {
    return { identity: loadKeyFile(path), created: false };
  } catch (err) {
    const cause = (err as { cause?: NodeJS.ErrnoException }).cause;
    if (cause?.code !== 'ENOENT') throw err;
  }
  const identity = Identity.generate();
  try {
    saveKeyFile(path, identity);
    return { identity, created: true };
  } catch (err) {
    // Another process created it first: use theirs.
    if ((err as { cause?: NodeJS.ErrnoException }).cause?.code === 'EEXIST') return { identity: loadKeyFile(path), created: false };
    throw err;
  }
}
