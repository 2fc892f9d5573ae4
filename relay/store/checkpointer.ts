import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/**
 * The worker's program, evaluated as a script so it runs the same from source (vitest) and from dist/.
 * It opens its own connection to the database and answers each request with PASSIVE checkpoint
 * passes: copying WAL frames back into the database file (and fsyncing it) never blocks the writer.
 */
// biome-ignore lint/complexity/noUselessStringRaw: embedded program; raw so a backslash added to it later reaches the worker unchanged.
const WORKER_SOURCE = String.raw`
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path);
db.pragma('busy_timeout = 5000');
db.pragma('synchronous = ' + workerData.synchronous);
function pass() {
  try {
    const r = db.pragma('wal_checkpoint(PASSIVE)')[0];
    return r.busy ? -1 : r.log;
  } catch {
    return -1; // busy: the next request tries again
  }
}
parentPort.on('message', (m) => {
  if (m === 'close') {
    db.close();
    parentPort.close();
    return;
  }
  // The bulk: passes while the writer goes on, each copying what was appended during the one
  // before, until little is left for the final pass (made while the writer holds its commits).
  let before = 0;
  for (let i = 0; i < workerData.maxPasses; i++) {
    const frames = pass();
    if (m === 'final' || frames < 0 || frames - before < workerData.smallFrames) break;
    before = frames;
  }
  parentPort.postMessage('done');
});
`;

/** Settings of a {@link Checkpointer}. */
export interface CheckpointerOptions {
  /** The database file (in WAL mode). */
  path: string;
  synchronous: 'FULL' | 'NORMAL';
  /** The bulk of the WAL is copied: the writer must stop committing until `onFinished`. */
  onHold: () => void;
  /** The checkpoint is over (complete unless a reader held an old snapshot): commits may resume. */
  onFinished: () => void;
}

/**
 * Checkpoints a WAL database from a worker thread, so the thread that commits never waits for the
 * WAL to be copied into the database file. A checkpoint made while commits append to the WAL never
 * reaches its end, and a WAL starts over from its beginning only once fully copied; so a checkpoint
 * copies the bulk while the writer goes on, then the few frames appended meanwhile while the writer
 * holds its commits (its thread stays free; writes only queue). At most
 * one checkpoint runs at a time; requests made meanwhile are folded into one that follows it.
 */
export class Checkpointer {
  #worker: Worker;
  #failed = false;
  #running = false;
  #again = false;
  #closed = false;
  #final = false;
  #opts: CheckpointerOptions;

  /** Starts the worker; requests made before its connection is open wait for it. */
  constructor(opts: CheckpointerOptions) {
    this.#opts = opts;
    const driver = createRequire(import.meta.url).resolve('better-sqlite3');
    this.#worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { driver, path: opts.path, synchronous: opts.synchronous, maxPasses: 4, smallFrames: 1000 },
    });
    this.#worker.unref();
    this.#worker.on('message', () => {
      if (!this.#final) {
        this.#final = true;
        this.#opts.onHold();
        this.#worker.postMessage('final');
        return;
      }
      this.#final = false;
      this.#running = false;
      this.#opts.onFinished();
      if (this.#again) this.request();
    });
    // A worker that fails leaves checkpointing to the caller (see `failed`), and must not hold commits.
    const fail = () => {
      this.#failed = true;
      if (this.#final) {
        this.#final = false;
        this.#opts.onFinished();
      }
    };
    this.#worker.on('error', fail);
    this.#worker.on('exit', fail);
  }

  /** True once the worker has stopped: the caller must checkpoint itself. */
  get failed(): boolean {
    return this.#failed;
  }

  /** Asks for a checkpoint soon. */
  request(): void {
    if (this.#closed || this.#failed) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#again = false;
    this.#running = true;
    this.#worker.postMessage('bulk');
  }

  /** Closes the worker's connection and stops it; a held writer is released. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#final) {
      this.#final = false;
      this.#opts.onFinished();
    }
    if (this.#failed) return;
    const exited = new Promise((resolve) => this.#worker.once('exit', resolve));
    this.#worker.postMessage('close');
    await exited;
  }
}
