import { createRequire } from 'node:module';
import { RoostError } from '../config.js';
import { assertCoreWorks, makeBatchLoop, type SchnorrCore } from './schnorr-core.js';

const require = createRequire(import.meta.url);

interface TinySecp {
  verifySchnorr(h: Uint8Array, Q: Uint8Array, signature: Uint8Array): boolean;
}

/** Loads tiny-secp256k1 (libsecp256k1 compiled to WebAssembly); its CommonJS build loads synchronously in workers too. */
export async function loadWasmCore(): Promise<SchnorrCore> {
  let source: string;
  let lib: TinySecp;
  try {
    source = require.resolve('tiny-secp256k1');
    lib = require(source) as TinySecp;
  } catch (err) {
    throw new RoostError('ROOST_ERR_VERIFY_UNAVAILABLE', `tiny-secp256k1 failed to load: ${(err as Error).message}`, { cause: err });
  }
  return assertCoreWorks({ name: 'wasm', source, verifyBatch: makeBatchLoop((msg, pk, sig) => lib.verifySchnorr(msg, pk, sig)) });
}
