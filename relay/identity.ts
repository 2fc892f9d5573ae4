import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { getPublicKey } from 'nostr-tools/pure';
import { RoostError } from './config.js';

/** The relay's own keypair: agents encrypt wake registrations to `pubkey` (published in NIP-11). */
export interface RelayIdentity {
  readonly secretKey: Uint8Array;
  /** x-only public key, 64 lowercase hex characters. */
  readonly pubkey: string;
  /** The key file, or undefined for an in-memory database (the identity then lasts one run). */
  readonly path: string | undefined;
  /** True when this call generated the key. */
  readonly created: boolean;
}

/** Where the identity of the relay whose database is `dbPath` is kept: beside the database. */
export function getRelayIdentityPath(dbPath: string): string | undefined {
  if (dbPath === '' || dbPath === ':memory:' || dbPath.startsWith('file::memory:')) return undefined;
  return `${dbPath}.key`;
}

/**
 * Reads the relay's secret key from beside the database, generating it (mode 0600) on first start.
 * A key file that others may read, or that is malformed, is refused with ROOST_ERR_IDENTITY.
 */
export function loadOrCreateRelayIdentity(dbPath: string, generateSecretKey: () => Uint8Array = () => new Uint8Array(randomBytes(32))): RelayIdentity {
  const path = getRelayIdentityPath(dbPath);
  if (path === undefined) return makeIdentity(freshKey(generateSecretKey), undefined, true);
  const existing = readKeyFile(path);
  if (existing) return makeIdentity(existing, path, false);

  mkdirSync(dirname(path), { recursive: true });
  const key = freshKey(generateSecretKey);
  // Write a private temporary file, then link it into place: a crash never leaves a half-written key,
  // and when two processes race, both end up with the one that was linked first.
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, Buffer.from(key).toString('hex') + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(tmp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const winner = readKeyFile(path);
    if (!winner) throw new RoostError('ROOST_ERR_IDENTITY', `relay identity file ${path} appeared but is unreadable`);
    return makeIdentity(winner, path, false);
  } finally {
    unlinkSync(tmp);
  }
  return makeIdentity(key, path, true);
}

function freshKey(generate: () => Uint8Array): Uint8Array {
  for (let i = 0; i < 8; i++) {
    const key = generate();
    if (isValidSecretKey(key)) return key;
  }
  throw new RoostError('ROOST_ERR_IDENTITY', 'could not generate a valid relay secret key');
}

function readKeyFile(path: string): Uint8Array | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new RoostError('ROOST_ERR_IDENTITY', `cannot read relay identity file ${path}`, { cause: err });
  }
  if (process.platform !== 'win32' && (statSync(path).mode & 0o077) !== 0) {
    throw new RoostError('ROOST_ERR_IDENTITY', `relay identity file ${path} is accessible to other users; run chmod 600 on it`);
  }
  const hex = text.trim();
  const key = /^[0-9a-f]{64}$/.test(hex) ? new Uint8Array(Buffer.from(hex, 'hex')) : undefined;
  if (!key || !isValidSecretKey(key)) {
    throw new RoostError('ROOST_ERR_IDENTITY', `relay identity file ${path} does not hold a 64-hex-character secp256k1 secret key`);
  }
  return key;
}

function isValidSecretKey(key: Uint8Array): boolean {
  if (key.length !== 32) return false;
  try {
    getPublicKey(key);
    return true;
  } catch {
    return false;
  }
}

function makeIdentity(secretKey: Uint8Array, path: string | undefined, created: boolean): RelayIdentity {
  return Object.freeze({ secretKey, pubkey: getPublicKey(secretKey), path, created });
}
