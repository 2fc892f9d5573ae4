import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { RoostError } from '../config.js';
import { assertCoreWorks, makeBatchLoop, type SchnorrCore } from './schnorr-core.js';

const require = createRequire(import.meta.url);

/** Loads @noble/curves' pure-JavaScript BIP-340 verifier, the slowest but dependency-free last resort. */
export async function loadJsCore(): Promise<SchnorrCore> {
  let source: string;
  let verify: (sig: Uint8Array, msg: Uint8Array, pk: Uint8Array) => boolean;
  try {
    source = pathToFileURL(require.resolve('@noble/curves/secp256k1.js')).href;
    const mod = (await import(source)) as typeof import('@noble/curves/secp256k1.js');
    verify = (sig, msg, pk) => mod.schnorr.verify(sig, msg, pk);
  } catch (err) {
    throw new RoostError('ROOST_ERR_VERIFY_UNAVAILABLE', `@noble/curves failed to load: ${(err as Error).message}`, { cause: err });
  }
  return assertCoreWorks({ name: 'js', source, verifyBatch: makeBatchLoop((msg, pk, sig) => verify(sig, msg, pk)) });
}
