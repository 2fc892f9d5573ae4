import * as secp from 'tiny-secp256k1';
import { availableParallelism } from 'node:os';
import type { NostrEvent, VerifiedEvent } from '../../shared/event.js';
import { RoostError } from '../config.js';
import { packEvent, VERIFY_REASONS } from './event-record.js';
import { loadJsCore } from './js.js';
import { loadNativeCore } from './native.js';
import { makeKatRecords, RECORD_SIZE, type CoreLoader, type CoreName, type SchnorrCore } from './schnorr-core.js';
import { loadWasmCore } from './wasm.js';
import { SchnorrWorkerPool } from './worker-pool.js';

export { RECORD_SIZE, type CoreLoader, type CoreName, type SchnorrCore } from './schnorr-core.js';

/** Checks events' ids and signatures; the only producer of {@link VerifiedEvent}. */
export interface Verifier {
  /**
   * Checks id (sha256 of the NIP-01 serialisation) and BIP-340 signature. `shapeChecked`: `event` is
   * the output of the edge schema (`eventSchema`: canonical field shapes, a fresh object holding only
   * the NIP-01 fields), so its shape is not checked again and it becomes the verified event as is.
   */
  verify(event: NostrEvent, shapeChecked?: boolean): Promise<VerifyResult>;
  /** Which implementation runs, e.g. 'native', 'wasm', 'js', 'native×2 workers'. */
  readonly backend: string;
  /** Stops worker threads; verifications still running reject with ROOST_ERR_VERIFY_CLOSED. */
  close(): Promise<void>;
}

/** The outcome of one verification; `reason` carries the NIP-01 `invalid:` prefix. */
export type VerifyResult = { ok: true; event: VerifiedEvent } | { ok: false; reason: string };

/** Options for {@link createVerifier}. */
export interface VerifierOptions {
  /** 'auto' tries native, then wasm, then js; naming one fails with ROOST_ERR_VERIFY_UNAVAILABLE if it cannot load. */
  backend?: 'auto' | CoreName;
  /** Worker threads running the backend; 0 verifies on the calling thread. Default {@link getDefaultWorkers}. */
  workers?: number;
  /** Most events in one message to a worker. */
  maxBatch?: number;
  /** Replaces the loader of a backend (tests simulate a missing addon this way). */
  loaders?: Partial<Record<CoreName, CoreLoader>>;
  /** Receives a warning when 'auto' falls back to a slower backend. */
  logger?: { warn(obj: object, msg: string): void };
}

/**
 * Worker threads used when `workers` is not given: one per core beyond the main thread's, none on a
 * single core. Chosen with bench/verify.mjs on 2 cores: a worker takes the Schnorr work (about 40 µs of
 * CPU per event with libsecp256k1) off the main thread, which keeps about 8 µs per event for the id hash
 * and messaging, leaving it free for JSON, SQLite and WebSocket work; one worker and two measured alike.
 */
export function getDefaultWorkers(cores = availableParallelism()): number {
  return cores <= 1 ? 0 : cores - 1;
}

/** Default records per worker message. */
export const DEFAULT_MAX_BATCH = 64;

const DEFAULT_LOADERS: Record<CoreName, CoreLoader> = { native: () => loadNativeCore(), wasm: loadWasmCore, js: loadJsCore };

/** Backends in the order 'auto' tries them. */
export const CORE_PREFERENCE: readonly CoreName[] = ['native', 'wasm', 'js'];

/** Loads the named backend, or for 'auto' the first that loads and passes its self-test. */
export async function loadSchnorrCore(options: Pick<VerifierOptions, 'backend' | 'loaders' | 'logger'> = {}): Promise<SchnorrCore> {
  const backend = options.backend ?? 'auto';
  const loaders = { ...DEFAULT_LOADERS, ...options.loaders };
  if (backend !== 'auto') {
    if (!CORE_PREFERENCE.includes(backend)) throw new RoostError('ROOST_ERR_CONFIG', `unknown verifier backend ${JSON.stringify(backend)}`);
    return loaders[backend]();
  }
  const failures: string[] = [];
  for (const name of CORE_PREFERENCE) {
    try {
      const core = await loaders[name]();
      if (failures.length > 0) options.logger?.warn({ backend: core.name, unavailable: failures }, 'faster signature verifier unavailable, using a slower one');
      return core;
    } catch (err) {
      failures.push(`${name}: ${(err as Error).message}`);
    }
  }
  throw new RoostError('ROOST_ERR_VERIFY_UNAVAILABLE', `no signature verifier could be loaded (${failures.join('; ')})`);
}

/**
 * Builds a verifier; with workers > 0 it starts the pool and resolves once every worker is ready. If
 * the workers cannot start, it warns and verifies on the calling thread: slower, never wrong.
 */
export async function createVerifier(options: VerifierOptions = {}): Promise<Verifier> {
  const workers = options.workers ?? getDefaultWorkers();
  const maxBatch = options.maxBatch ?? DEFAULT_MAX_BATCH;
  if (!Number.isInteger(workers) || workers < 0) throw new RoostError('ROOST_ERR_CONFIG', `verifier workers must be a non-negative integer, got ${workers}`);
  if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new RoostError('ROOST_ERR_CONFIG', `verifier maxBatch must be a positive integer, got ${maxBatch}`);
  const core = await loadSchnorrCore(options);
  if (workers === 0) return new InlineVerifier(core);
  let pool: SchnorrWorkerPool;
  try {
    pool = await SchnorrWorkerPool.start({ core, size: workers, kat: makeKatRecords() });
  } catch (err) {
    options.logger?.warn({ backend: core.name, workers, err: (err as Error).message }, 'verifier workers failed to start, verifying on the main thread');
    return new InlineVerifier(core);
  }
  return new PooledVerifier(pool, `${core.name}×${workers} worker${workers === 1 ? '' : 's'}`, maxBatch);
}

// The one place a VerifiedEvent is made: a fresh object with exactly the NIP-01 fields, so nothing the
// sender attached travels on to storage.
/**
 * Synchronous check on the calling thread with the wasm core (tiny-secp256k1 loads synchronously):
 * for rare, off-hot-path checks such as bulk import tools and NIP-98 admin requests.
 */
export function verifyEventSync(ev: NostrEvent): VerifyResult {
  const record = Buffer.alloc(RECORD_SIZE);
  const problem = packEvent(ev, record, 0);
  if (problem !== undefined) return { ok: false, reason: problem };
  const good = secp.verifySchnorr(record.subarray(0, 32), record.subarray(32, 64), record.subarray(64, 128));
  return good ? makeVerified(ev) : BAD_SIG;
}

function makeVerified(ev: NostrEvent, fresh = false): VerifyResult {
  if (fresh) return { ok: true, event: ev as VerifiedEvent };
  const event = { id: ev.id, pubkey: ev.pubkey, created_at: ev.created_at, kind: ev.kind, tags: ev.tags, content: ev.content, sig: ev.sig };
  return { ok: true, event: event as VerifiedEvent };
}

const BAD_SIG: VerifyResult = Object.freeze({ ok: false, reason: VERIFY_REASONS.badSig });

/** Verifies on the calling thread, one event per call into the backend. */
class InlineVerifier implements Verifier {
  readonly backend: string;
  #core: SchnorrCore;
  #record = Buffer.alloc(RECORD_SIZE);
  #out = new Uint8Array(1);

  constructor(core: SchnorrCore) {
    this.#core = core;
    this.backend = core.name;
  }

  async verify(ev: NostrEvent, shapeChecked = false): Promise<VerifyResult> {
    const reason = packEvent(ev, this.#record, 0, shapeChecked);
    if (reason !== undefined) return { ok: false, reason };
    this.#core.verifyBatch(this.#record, this.#out, 1);
    return this.#out[0] === 1 ? makeVerified(ev, shapeChecked) : BAD_SIG;
  }

  async close(): Promise<void> {}
}

interface Waiter {
  ev: NostrEvent;
  fresh: boolean;
  resolve(r: VerifyResult): void;
  reject(err: Error): void;
}

/**
 * Checks ids on the calling thread and sends signatures to workers in batches: events arriving in one
 * event-loop turn share a message (flushed by setImmediate, or as soon as maxBatch is reached).
 */
class PooledVerifier implements Verifier {
  readonly backend: string;
  #pool: SchnorrWorkerPool;
  #maxBatch: number;
  #records: Buffer | undefined;
  #waiters: Waiter[] = [];
  #scheduled = false;
  #closed = false;

  constructor(pool: SchnorrWorkerPool, backend: string, maxBatch: number) {
    this.#pool = pool;
    this.backend = backend;
    this.#maxBatch = maxBatch;
  }

  async verify(ev: NostrEvent, shapeChecked = false): Promise<VerifyResult> {
    if (this.#closed) throw new RoostError('ROOST_ERR_VERIFY_CLOSED', 'verifier is closed');
    this.#records ??= Buffer.from(this.#pool.takeBuffer(this.#maxBatch * RECORD_SIZE));
    const reason = packEvent(ev, this.#records, this.#waiters.length * RECORD_SIZE, shapeChecked);
    if (reason !== undefined) return { ok: false, reason };
    const result = new Promise<VerifyResult>((resolve, reject) => this.#waiters.push({ ev, fresh: shapeChecked, resolve, reject }));
    if (this.#waiters.length >= this.#maxBatch) this.#flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => {
        this.#scheduled = false;
        this.#flush();
      });
    }
    return result;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#flush();
    await this.#pool.close();
  }

  #flush(): void {
    const waiters = this.#waiters;
    const records = this.#records;
    if (waiters.length === 0 || records === undefined) return;
    this.#waiters = [];
    this.#records = undefined;
    this.#pool.run(records.buffer as ArrayBuffer, waiters.length).then(
      (out) => {
        for (let i = 0; i < waiters.length; i++) {
          const w = waiters[i]!;
          w.resolve(out[i] === 1 ? makeVerified(w.ev, w.fresh) : BAD_SIG);
        }
      },
      (err: Error) => {
        for (const w of waiters) w.reject(err);
      },
    );
  }
}
