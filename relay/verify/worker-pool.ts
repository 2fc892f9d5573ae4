import { Worker } from 'node:worker_threads';
import { RoostError } from '../config.js';
import { RECORD_SIZE, type SchnorrCore } from './schnorr-core.js';

/**
 * The worker's program, evaluated as a script so it runs the same from source (vitest) and from dist/.
 * It loads the core named in workerData, self-tests it, then answers {id, records, count} with
 * {id, records, out}, handing both buffers back by transfer. The per-record loop mirrors makeBatchLoop.
 */
// biome-ignore lint/complexity/noUselessStringRaw: embedded program; raw so a backslash added to it later reaches the worker unchanged.
const WORKER_SOURCE = String.raw`
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const SIZE = ${RECORD_SIZE};
function loop(one) {
  return (r, o, n) => {
    for (let i = 0; i < n; i++) {
      const b = i * SIZE;
      let ok = false;
      try { ok = one(r.subarray(b, b + 32), r.subarray(b + 32, b + 64), r.subarray(b + 64, b + SIZE)) === true; } catch { ok = false; }
      o[i] = ok ? 1 : 0;
    }
  };
}
async function load(name, source) {
  if (name === 'native') { const m = require(source); return (r, o, n) => m.verifyBatch(r, o, n); }
  if (name === 'wasm') { const m = require(source); return loop((h, q, s) => m.verifySchnorr(h, q, s)); }
  if (name === 'js') { const m = await import(source); return loop((h, q, s) => m.schnorr.verify(s, h, q)); }
  throw new Error('unknown core ' + name);
}
load(workerData.name, workerData.source).then((verifyBatch) => {
  const kat = new Uint8Array(workerData.kat);
  const katOut = new Uint8Array(2);
  verifyBatch(kat, katOut, 2);
  if (katOut[0] !== 1 || katOut[1] !== 0) throw new Error(workerData.name + ' core failed its self-test in a worker');
  parentPort.on('message', (m) => {
    const records = new Uint8Array(m.records);
    const out = new Uint8Array(m.count);
    verifyBatch(records, out, m.count);
    parentPort.postMessage({ id: m.id, records: m.records, out: out.buffer }, [m.records, out.buffer]);
  });
  parentPort.postMessage({ ready: true });
}, (err) => parentPort.postMessage({ ready: false, error: String(err && err.message || err) }));
`;

interface Job {
  resolve(out: Uint8Array): void;
  reject(err: Error): void;
}

interface Slot {
  worker: Worker;
  jobs: Map<number, Job>;
}

/** Options for {@link SchnorrWorkerPool.start}. */
export interface WorkerPoolOptions {
  core: Pick<SchnorrCore, 'name' | 'source'>;
  size: number;
  /** Two KAT records (valid, then bit-flipped) each worker checks its core against before serving. */
  kat: Uint8Array;
}

/** N worker threads, each running one Schnorr core; batches of packed records go to the least busy one. */
export class SchnorrWorkerPool {
  readonly size: number;
  #opts: WorkerPoolOptions;
  #slots: Slot[] = [];
  #nextId = 1;
  #closed = false;
  #spare: ArrayBuffer[] = [];

  private constructor(opts: WorkerPoolOptions) {
    this.#opts = opts;
    this.size = opts.size;
  }

  /** Starts every worker and waits until each has loaded and self-tested its core. */
  static async start(opts: WorkerPoolOptions): Promise<SchnorrWorkerPool> {
    if (!Number.isInteger(opts.size) || opts.size < 1)
      throw new RoostError('ROOST_ERR_CONFIG', `verifier workers must be a positive integer, got ${opts.size}`);
    const pool = new SchnorrWorkerPool(opts);
    try {
      await Promise.all(Array.from({ length: opts.size }, () => pool.#spawn()));
    } catch (err) {
      await pool.close();
      throw err;
    }
    return pool;
  }

  /** A records buffer of at least `bytes` (recycled from finished batches when possible). */
  takeBuffer(bytes: number): ArrayBuffer {
    const b = this.#spare.pop();
    return b !== undefined && b.byteLength >= bytes ? b : new ArrayBuffer(bytes);
  }

  /** Verifies `count` records; `records` is transferred to the worker and must not be used afterwards. */
  run(records: ArrayBuffer, count: number): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(new RoostError('ROOST_ERR_VERIFY_CLOSED', 'verifier is closed'));
    let slot = this.#slots[0];
    if (slot === undefined) return Promise.reject(new RoostError('ROOST_ERR_VERIFY_WORKER', 'no verifier worker is running'));
    for (const s of this.#slots) if (s.jobs.size < slot.jobs.size) slot = s;
    const id = this.#nextId++;
    return new Promise<Uint8Array>((resolve, reject) => {
      slot.jobs.set(id, { resolve, reject });
      slot.worker.postMessage({ id, records, count }, [records]);
    });
  }

  /** Stops every worker; batches still running are rejected with ROOST_ERR_VERIFY_CLOSED. */
  async close(): Promise<void> {
    this.#closed = true;
    const slots = this.#slots;
    this.#slots = [];
    for (const s of slots) this.#failJobs(s, new RoostError('ROOST_ERR_VERIFY_CLOSED', 'verifier closed while verifying'));
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  #spawn(): Promise<void> {
    const { core, kat } = this.#opts;
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { name: core.name, source: core.source, kat: kat.slice().buffer } });
    const slot: Slot = { worker, jobs: new Map() };
    this.#slots.push(slot);
    return new Promise<void>((resolve, reject) => {
      let ready = false;
      const onDeath = (err: Error) => {
        if (ready) return this.#replace(slot, err);
        // A worker that never became ready is not restarted: the same failure would repeat forever.
        const i = this.#slots.indexOf(slot);
        if (i >= 0) this.#slots.splice(i, 1);
        const failure = new RoostError('ROOST_ERR_VERIFY_UNAVAILABLE', `verifier worker failed to start: ${err.message}`, { cause: err });
        this.#failJobs(slot, failure);
        reject(failure);
      };
      worker.on('message', (m: { ready?: boolean; error?: string; id?: number; records?: ArrayBuffer; out?: ArrayBuffer }) => {
        if (m.ready === true) {
          ready = true;
          return resolve();
        }
        if (m.ready === false) {
          void worker.terminate();
          return onDeath(new Error(m.error));
        }
        const job = slot.jobs.get(m.id!);
        if (job === undefined) return;
        slot.jobs.delete(m.id!);
        if (this.#spare.length < 2 * this.size) this.#spare.push(m.records!);
        job.resolve(new Uint8Array(m.out!));
      });
      worker.on('error', onDeath);
      worker.on('exit', (code) => onDeath(new Error(`worker exited with code ${code}`)));
    });
  }

  // A worker that dies fails only its own batches; the pool keeps its size by starting a new one.
  #replace(slot: Slot, err: Error): void {
    const i = this.#slots.indexOf(slot);
    if (i < 0) return;
    this.#slots.splice(i, 1);
    this.#failJobs(slot, new RoostError('ROOST_ERR_VERIFY_WORKER', `verifier worker died: ${err.message}`, { cause: err }));
    if (!this.#closed) this.#spawn().catch(() => undefined);
  }

  #failJobs(slot: Slot, err: Error): void {
    for (const job of slot.jobs.values()) job.reject(err);
    slot.jobs.clear();
  }
}
