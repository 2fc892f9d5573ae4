/** What the gate needs of the socket: stop and restart reading (ws.WebSocket satisfies it). */
export interface Pausable {
  pause(): void;
  resume(): void;
}

/** Frames one connection may run in one turn of the event loop before the rest wait for the next turn. */
export const FRAMES_PER_TURN = 16;

/**
 * Runs one connection's inbound frames in order, with bounded work at a time, so that a connection
 * pipelining expensive frames cannot monopolise the event loop: at most `maxInflight` frames whose work
 * continues after they return (EVENT, AUTH: verification, then commit and fan-out) at once, and at most
 * FRAMES_PER_TURN frames per turn. Beyond that, frames already read wait here (in order) and the socket is
 * paused, so the rest wait in the kernel's buffer and memory stays bounded by one read.
 */
export class InboundGate {
  #queue: string[] = [];
  #inflight = 0;
  #paused = false;
  #scheduled = false;
  #closed = false;
  #ranThisTurn = 0;
  #turnReset = false;
  readonly #socket: Pausable;
  readonly #maxInflight: number;
  readonly #run: (text: string) => Promise<unknown> | undefined;

  constructor(socket: Pausable, maxInflight: number, run: (text: string) => Promise<unknown> | undefined) {
    this.#socket = socket;
    this.#maxInflight = maxInflight;
    this.#run = run;
  }

  /** Frames read but not yet run. */
  get queued(): number {
    return this.#queue.length;
  }

  /** Frames whose asynchronous work has not finished. */
  get inflight(): number {
    return this.#inflight;
  }

  /** Takes one inbound frame: runs it now if the connection is within its budget, else queues it. */
  push(text: string): void {
    if (this.#closed) return;
    if (this.#queue.length === 0 && this.#canRun()) {
      this.#runOne(text);
      return;
    }
    this.#queue.push(text);
    this.#pause();
    this.#schedule();
  }

  /** Drops queued frames (the connection closed). */
  close(): void {
    this.#closed = true;
    this.#queue.length = 0;
  }

  #canRun(): boolean {
    return this.#inflight < this.#maxInflight && this.#ranThisTurn < FRAMES_PER_TURN;
  }

  #runOne(text: string): void {
    this.#ranThisTurn++;
    if (!this.#turnReset) {
      this.#turnReset = true;
      setImmediate(() => {
        this.#turnReset = false;
        this.#ranThisTurn = 0;
      });
    }
    const pending = this.#run(text);
    if (pending === undefined) return;
    this.#inflight++;
    const done = () => {
      this.#inflight--;
      this.#schedule();
    };
    pending.then(done, done);
  }

  /** Drains in a later turn (setImmediate: after the I/O of other connections waiting in this one). */
  #schedule(): void {
    if (this.#scheduled || this.#queue.length === 0 || this.#closed) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#drain();
    });
  }

  #drain(): void {
    while (this.#queue.length > 0 && !this.#closed && this.#canRun()) this.#runOne(this.#queue.shift()!);
    if (this.#queue.length === 0) this.#resume();
    else if (this.#inflight < this.#maxInflight) this.#schedule(); // out of frames for this turn only
  }

  #pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.#socket.pause();
  }

  #resume(): void {
    if (!this.#paused || this.#closed) return;
    this.#paused = false;
    this.#socket.resume();
  }
}
