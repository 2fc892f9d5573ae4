import { RoostError } from '../config.js';

/** Bytes in one packed record: 32-byte message (the event id), 32-byte x-only pubkey, 64-byte signature. */
export const RECORD_SIZE = 128;

/** Names of the Schnorr implementations, fastest first. */
export type CoreName = 'native' | 'wasm' | 'js';

/**
 * One BIP-340 implementation behind a batch interface: verifies `count` packed records from `records`
 * and writes 1 (valid) or 0 into `out[i]`. `source` is what a worker thread loads to get the same core.
 */
export interface SchnorrCore {
  readonly name: CoreName;
  readonly source: string;
  verifyBatch(records: Uint8Array, out: Uint8Array, count: number): void;
}

/** Loads one core or throws ROOST_ERR_VERIFY_UNAVAILABLE; injected in tests to simulate a missing backend. */
export type CoreLoader = () => Promise<SchnorrCore>;

// BIP-340 test vector 1 (valid). A core that does not accept it, or accepts it with one bit flipped, is not used.
const KAT_PUBKEY = 'dff1d77f2a671c5f36183726db2341be58feae1da2deced843240f7b502ba659';
const KAT_MSG = '243f6a8885a308d313198a2e03707344a4093822299f31d0082efa98ec4e6c89';
const KAT_SIG = '6896bd60eeae296db48a229ff71dfe071bde413e6d43f917dc8dcf8c78de33418906d11ac976abccb20b091292bff4ea897efcb639ea871cfa95f6de339e4b0a';

/** Two known-answer records: a valid BIP-340 vector, then the same with one signature bit flipped. */
export function makeKatRecords(): Buffer {
  const records = Buffer.alloc(RECORD_SIZE * 2);
  for (const off of [0, RECORD_SIZE]) {
    records.write(KAT_MSG, off, 'hex');
    records.write(KAT_PUBKEY, off + 32, 'hex');
    records.write(KAT_SIG, off + 64, 'hex');
  }
  records[RECORD_SIZE + 64 + 31]! ^= 1;
  return records;
}

/** Runs the known-answer test on a freshly loaded core; throws ROOST_ERR_VERIFY_UNAVAILABLE when it fails. */
export function assertCoreWorks(core: SchnorrCore): SchnorrCore {
  const records = makeKatRecords();
  const out = new Uint8Array(2);
  core.verifyBatch(records, out, 2);
  if (out[0] !== 1 || out[1] !== 0) {
    throw new RoostError('ROOST_ERR_VERIFY_UNAVAILABLE', `${core.name} Schnorr backend failed its self-test`);
  }
  return core;
}

/** Wraps a one-at-a-time verify function as a batch loop; any throw (malformed key or signature) counts as invalid. */
export function makeBatchLoop(verifyOne: (msg: Uint8Array, pubkey: Uint8Array, sig: Uint8Array) => boolean): SchnorrCore['verifyBatch'] {
  return (records, out, count) => {
    for (let i = 0; i < count; i++) {
      const b = i * RECORD_SIZE;
      let ok = false;
      try {
        ok = verifyOne(records.subarray(b, b + 32), records.subarray(b + 32, b + 64), records.subarray(b + 64, b + RECORD_SIZE)) === true;
      } catch {
        ok = false;
      }
      out[i] = ok ? 1 : 0;
    }
  };
}
