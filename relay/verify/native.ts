import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RoostError } from '../config.js';
import { assertCoreWorks, RECORD_SIZE, type SchnorrCore } from './schnorr-core.js';

const require = createRequire(import.meta.url);

/** Where `native/build.mjs` puts the addon, relative to the package root. */
export const NATIVE_ADDON_RELATIVE = join('native', 'build', 'Release', 'roost_schnorr.node');

interface NativeAddon {
  verifyBatch(records: Uint8Array, out: Uint8Array, count: number): void;
  recordSize: number;
}

/** The built addon's absolute path, searched upward from this module (it runs from relay/ and from dist/relay/). */
export function findNativeAddon(from = dirname(fileURLToPath(import.meta.url))): string | undefined {
  let dir = from;
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, NATIVE_ADDON_RELATIVE);
    if (existsSync(candidate)) return candidate;
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return undefined;
}

/** Loads the libsecp256k1 addon; throws ROOST_ERR_VERIFY_UNAVAILABLE when it was not built or does not load. */
export async function loadNativeCore(locate: () => string | undefined = () => findNativeAddon()): Promise<SchnorrCore> {
  const path = locate();
  if (path === undefined) {
    throw new RoostError('ROOST_ERR_VERIFY_UNAVAILABLE', 'native Schnorr addon not built (needs libsecp256k1-dev, then npm ci or node native/build.mjs)');
  }
  let addon: NativeAddon;
  try {
    addon = require(path) as NativeAddon;
  } catch (err) {
    throw new RoostError('ROOST_ERR_VERIFY_UNAVAILABLE', `native Schnorr addon failed to load: ${(err as Error).message}`, { cause: err });
  }
  if (typeof addon.verifyBatch !== 'function' || addon.recordSize !== RECORD_SIZE) {
    throw new RoostError('ROOST_ERR_VERIFY_UNAVAILABLE', 'native Schnorr addon has an unexpected interface');
  }
  return assertCoreWorks({ name: 'native', source: path, verifyBatch: (records, out, count) => addon.verifyBatch(records, out, count) });
}
