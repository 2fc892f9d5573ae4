import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getPublicKey } from 'nostr-tools/pure';
import { afterAll, describe, expect, test } from 'vitest';
import { RoostError } from '../../../relay/config.js';
import { getRelayIdentityPath, loadOrCreateRelayIdentity } from '../../../relay/identity.js';
import { makeTempDir } from './support.js';

const tmp = makeTempDir();
afterAll(() => tmp.remove());

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof RoostError ? err.code : 'not-a-roost-error';
  }
  return undefined;
}

describe('relay identity', () => {
  test('is generated on first start beside the database, mode 0600, and reused afterwards', () => {
    const db = join(tmp.dir, 'nested', 'roost.db');
    const first = loadOrCreateRelayIdentity(db);
    expect(first.created).toBe(true);
    expect(first.path).toBe(`${db}.key`);
    expect(first.pubkey).toMatch(/^[0-9a-f]{64}$/);
    expect(first.pubkey).toBe(getPublicKey(first.secretKey));
    expect(statSync(first.path!).mode & 0o777).toBe(0o600);
    const again = loadOrCreateRelayIdentity(db);
    expect(again.created).toBe(false);
    expect(again.pubkey).toBe(first.pubkey);
    expect(Buffer.from(again.secretKey)).toEqual(Buffer.from(first.secretKey));
  });

  test('uses the injected randomness', () => {
    const key = new Uint8Array(32).fill(7);
    const id = loadOrCreateRelayIdentity(join(tmp.dir, 'seeded.db'), () => key);
    expect(id.pubkey).toBe(getPublicKey(key));
    expect(readFileSync(id.path!, 'utf8').trim()).toBe('07'.repeat(32));
  });

  test('skips generated keys that are not valid secp256k1 secrets', () => {
    const keys = [new Uint8Array(32), new Uint8Array(32).fill(0xff), new Uint8Array(32).fill(1)];
    const id = loadOrCreateRelayIdentity(join(tmp.dir, 'retry.db'), () => keys.shift()!);
    expect(id.pubkey).toBe(getPublicKey(new Uint8Array(32).fill(1)));
  });

  test('refuses a key file other users can read', () => {
    const db = join(tmp.dir, 'loose.db');
    const id = loadOrCreateRelayIdentity(db);
    chmodSync(id.path!, 0o644);
    expect(codeOf(() => loadOrCreateRelayIdentity(db))).toBe('ROOST_ERR_IDENTITY');
  });

  test('refuses a malformed key file rather than replacing it', () => {
    const db = join(tmp.dir, 'garbage.db');
    writeFileSync(`${db}.key`, 'not a key\n', { mode: 0o600 });
    expect(codeOf(() => loadOrCreateRelayIdentity(db))).toBe('ROOST_ERR_IDENTITY');
    expect(readFileSync(`${db}.key`, 'utf8')).toBe('not a key\n');
  });

  test('an in-memory database gets an identity that lasts one run', () => {
    expect(getRelayIdentityPath(':memory:')).toBeUndefined();
    const a = loadOrCreateRelayIdentity(':memory:');
    const b = loadOrCreateRelayIdentity(':memory:');
    expect(a.path).toBeUndefined();
    expect(a.pubkey).not.toBe(b.pubkey);
  });
});
