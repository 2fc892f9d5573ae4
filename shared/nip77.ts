import { sha256 } from '@noble/hashes/sha2.js';

/**
 * NIP-77 negentropy: Negentropy Protocol V1 (range-based set reconciliation), written from the
 * protocol description. Pure: a sorted set of (timestamp, id) items, the wire codec, and the two
 * roles — the initiator (who learns have/need) and the responder (the relay). No I/O.
 */

/** Protocol version byte of Negentropy V1. */
export const NEG_PROTOCOL_VERSION = 0x61;

const MODE_SKIP = 0;
const MODE_FINGERPRINT = 1;
const MODE_ID_LIST = 2;
const ID_SIZE = 32;
const FINGERPRINT_SIZE = 16;
/** A range with at least twice this many items is split into this many fingerprinted buckets. */
const BUCKETS = 16;
/** Limb sums stay exact below 2^53: normalise before this many ids are added. */
const NORMALISE_EVERY = 1 << 20;

/** A malformed negentropy message; `message` is safe to send back (no input echoed). */
export class NegentropyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NegentropyError';
  }
}

/** An exclusive upper bound: a timestamp (Infinity = the reserved max) and an id prefix (zero-padded). */
export interface NegBound {
  timestamp: number;
  prefix: Uint8Array;
}

const INFINITY_BOUND: NegBound = Object.freeze({ timestamp: Number.POSITIVE_INFINITY, prefix: new Uint8Array(0) });

/** Lowercase hex of bytes. */
export function bytesToHex(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += (b[i]! < 16 ? '0' : '') + b[i]!.toString(16);
  return s;
}

/** Bytes of an even-length hex string; throws NegentropyError on anything else. */
export function hexToBytes(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) throw new NegentropyError('message is not hex');
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** Compares two byte strings lexically (a shorter prefix sorts first). */
function compareBytes(a: Uint8Array, aOff: number, aLen: number, b: Uint8Array, bOff: number, bLen: number): number {
  const n = Math.min(aLen, bLen);
  for (let i = 0; i < n; i++) {
    const d = a[aOff + i]! - b[bOff + i]!;
    if (d !== 0) return d;
  }
  return aLen - bLen;
}

/**
 * The items of one side, sorted by timestamp then id: timestamps in a Float64Array and ids packed
 * in one byte array (40 bytes an item), so a 100k-item session costs about 4 MB.
 */
export class NegentropySet {
  readonly timestamps: Float64Array;
  readonly ids: Uint8Array;

  private constructor(timestamps: Float64Array, ids: Uint8Array) {
    this.timestamps = timestamps;
    this.ids = ids;
  }

  /** Builds a set from items with hex ids (any order; duplicates are kept once). */
  static from(items: ReadonlyArray<{ timestamp: number; id: string }>): NegentropySet {
    const sorted = [...items].sort((a, b) => a.timestamp - b.timestamp || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const unique = sorted.filter((it, i) => i === 0 || it.id !== sorted[i - 1]!.id || it.timestamp !== sorted[i - 1]!.timestamp);
    const ts = new Float64Array(unique.length);
    const ids = new Uint8Array(unique.length * ID_SIZE);
    unique.forEach((it, i) => {
      if (!Number.isSafeInteger(it.timestamp) || it.timestamp < 0) throw new NegentropyError('timestamp out of range');
      if (!/^[0-9a-f]{64}$/.test(it.id)) throw new NegentropyError('id must be 64 lowercase hex characters');
      ts[i] = it.timestamp;
      ids.set(hexToBytes(it.id), i * ID_SIZE);
    });
    return new NegentropySet(ts, ids);
  }

  /** Number of items. */
  get size(): number {
    return this.timestamps.length;
  }

  /** The id of item i, in hex. */
  idHex(i: number): string {
    return bytesToHex(this.ids.subarray(i * ID_SIZE, (i + 1) * ID_SIZE));
  }

  /** Item i compared with a bound: negative when the item sorts before it. */
  #compareToBound(i: number, b: NegBound): number {
    const t = this.timestamps[i]!;
    if (t !== b.timestamp) return t < b.timestamp ? -1 : 1;
    // The bound's id is its prefix padded with zero bytes.
    const padded = b.prefix.length === ID_SIZE ? b.prefix : padId(b.prefix);
    return compareBytes(this.ids, i * ID_SIZE, ID_SIZE, padded, 0, ID_SIZE);
  }

  /** First index in [begin, end) whose item is not below the bound (end when none). */
  lowerBound(begin: number, end: number, b: NegBound): number {
    let lo = begin;
    let hi = end;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#compareToBound(mid, b) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The V1 fingerprint of items [begin, end): sha256(sum of ids mod 2^256, little-endian ‖ varint(count))[0..16]. */
  fingerprint(begin: number, end: number): Uint8Array {
    const limbs = new Float64Array(8);
    const ids = this.ids;
    for (let i = begin; i < end; i++) {
      const o = i * ID_SIZE;
      for (let j = 0; j < 8; j++) {
        const p = o + j * 4;
        limbs[j]! += ids[p]! + ids[p + 1]! * 0x100 + ids[p + 2]! * 0x10000 + ids[p + 3]! * 0x1000000;
      }
      if ((i - begin) % NORMALISE_EVERY === NORMALISE_EVERY - 1) normaliseLimbs(limbs);
    }
    normaliseLimbs(limbs);
    const sum = new Uint8Array(ID_SIZE);
    for (let j = 0; j < 8; j++) {
      const v = limbs[j]!;
      sum[j * 4] = v & 0xff;
      sum[j * 4 + 1] = (v >>> 8) & 0xff;
      sum[j * 4 + 2] = (v >>> 16) & 0xff;
      sum[j * 4 + 3] = (v >>> 24) & 0xff;
    }
    const count = encodeVarint(end - begin);
    const input = new Uint8Array(ID_SIZE + count.length);
    input.set(sum, 0);
    input.set(count, ID_SIZE);
    return sha256(input).subarray(0, FINGERPRINT_SIZE);
  }

  /** The shortest bound separating item i-1 from item i (i ≥ 1). */
  minimalBound(i: number): NegBound {
    const t = this.timestamps[i]!;
    if (this.timestamps[i - 1]! !== t) return { timestamp: t, prefix: new Uint8Array(0) };
    const a = (i - 1) * ID_SIZE;
    const b = i * ID_SIZE;
    let shared = 0;
    while (shared < ID_SIZE && this.ids[a + shared] === this.ids[b + shared]) shared++;
    return { timestamp: t, prefix: this.ids.slice(b, b + Math.min(shared + 1, ID_SIZE)) };
  }
}

function padId(prefix: Uint8Array): Uint8Array {
  const out = new Uint8Array(ID_SIZE);
  out.set(prefix.subarray(0, ID_SIZE));
  return out;
}

/** Carries each 32-bit limb's overflow into the next; the top carry is dropped (mod 2^256). */
function normaliseLimbs(limbs: Float64Array): void {
  let carry = 0;
  for (let j = 0; j < 8; j++) {
    const total = limbs[j]! + carry;
    const low = total % 0x100000000;
    carry = (total - low) / 0x100000000;
    limbs[j] = low;
  }
}

/** A V1 varint: base-128 digits, most significant first, high bit set on all but the last. */
export function encodeVarint(n: number): Uint8Array {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`varint out of range: ${n}`);
  const digits: number[] = [n % 128];
  let rest = Math.floor(n / 128);
  while (rest > 0) {
    digits.push((rest % 128) | 0x80);
    rest = Math.floor(rest / 128);
  }
  return Uint8Array.from(digits.reverse());
}

/** Reads a message front to back; every read checks what is left. */
class Reader {
  #buf: Uint8Array;
  #pos = 0;
  #lastTimestamp = 0;

  constructor(buf: Uint8Array) {
    this.#buf = buf;
  }

  get done(): boolean {
    return this.#pos >= this.#buf.length;
  }

  get remaining(): number {
    return this.#buf.length - this.#pos;
  }

  byte(): number {
    if (this.#pos >= this.#buf.length) throw new NegentropyError('message ends early');
    return this.#buf[this.#pos++]!;
  }

  bytes(n: number): Uint8Array {
    if (n > this.remaining) throw new NegentropyError('message ends early');
    const out = this.#buf.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return out;
  }

  varint(): number {
    let n = 0;
    for (;;) {
      const b = this.byte();
      n = n * 128 + (b & 0x7f);
      if (n > Number.MAX_SAFE_INTEGER) throw new NegentropyError('varint too large');
      if ((b & 0x80) === 0) return n;
    }
  }

  bound(): NegBound {
    const encoded = this.varint();
    let timestamp: number;
    if (encoded === 0) timestamp = Number.POSITIVE_INFINITY;
    else {
      timestamp = this.#lastTimestamp + (encoded - 1);
      if (!Number.isSafeInteger(timestamp)) throw new NegentropyError('timestamp too large');
      this.#lastTimestamp = timestamp;
    }
    const len = this.varint();
    if (len > ID_SIZE) throw new NegentropyError('bound id prefix longer than 32 bytes');
    return { timestamp, prefix: this.bytes(len).slice() };
  }
}

/** Builds a message; bound timestamps are delta-encoded from the previous one in the same message. */
class Writer {
  #chunks: Uint8Array[] = [];
  #length = 0;
  #lastTimestamp = 0;

  get length(): number {
    return this.#length;
  }

  push(b: Uint8Array | number[]): void {
    const u = b instanceof Uint8Array ? b : Uint8Array.from(b);
    this.#chunks.push(u);
    this.#length += u.length;
  }

  append(w: Writer): void {
    for (const c of w.#chunks) this.push(c);
    w.#chunks = [];
    w.#length = 0;
  }

  bound(b: NegBound): void {
    if (b.timestamp === Number.POSITIVE_INFINITY) {
      this.push([0]);
      this.#lastTimestamp = Number.POSITIVE_INFINITY;
    } else {
      this.push(encodeVarint(b.timestamp - this.#lastTimestamp + 1));
      this.#lastTimestamp = b.timestamp;
    }
    this.push(encodeVarint(b.prefix.length));
    this.push(b.prefix);
  }

  /** Shares the timestamp base with another writer of the same message. */
  syncFrom(w: Writer): void {
    this.#lastTimestamp = w.#lastTimestamp;
  }

  syncTo(w: Writer): void {
    w.#lastTimestamp = this.#lastTimestamp;
  }

  bytes(): Uint8Array {
    const out = new Uint8Array(this.#length);
    let o = 0;
    for (const c of this.#chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}

/**
 * Reads a whole message without a set, so a malformed one is refused before any work is done for
 * it (the relay checks a NEG-OPEN before it queries its store). Throws NegentropyError.
 */
export function checkNegentropyMessage(msg: Uint8Array): void {
  const input = new Reader(msg);
  const version = input.byte();
  if (version < 0x60 || version > 0x6f) throw new NegentropyError('not a negentropy message (bad protocol version byte)');
  if (version !== NEG_PROTOCOL_VERSION) return;
  while (!input.done) {
    input.bound();
    const mode = input.varint();
    if (mode === MODE_FINGERPRINT) input.bytes(FINGERPRINT_SIZE);
    else if (mode === MODE_ID_LIST) {
      const count = input.varint();
      if (count > input.remaining / ID_SIZE) throw new NegentropyError('id list longer than the message');
      input.bytes(count * ID_SIZE);
    } else if (mode !== MODE_SKIP) throw new NegentropyError(`unknown range mode ${mode}`);
  }
}

/** Options of one side of a reconciliation. */
export interface NegentropyOptions {
  /** Largest message this side writes, in bytes (binary, before hex); 0 = unbounded. At least 4096. */
  frameSizeLimit?: number;
}

/** What an initiator learns from one round. */
export interface NegentropyRound {
  /** The next message to send, or undefined when reconciliation is complete. */
  next: Uint8Array | undefined;
  /** Ids this side has and the other lacks. */
  have: string[];
  /** Ids the other side has and this one lacks. */
  need: string[];
}

/** One side of a negentropy exchange over a fixed, sorted set. */
export class Negentropy {
  readonly #set: NegentropySet;
  readonly #limit: number;
  readonly #initiator: boolean;

  constructor(set: NegentropySet, role: 'initiator' | 'responder', opts: NegentropyOptions = {}) {
    const limit = opts.frameSizeLimit ?? 0;
    if (limit !== 0 && limit < 4096) throw new RangeError('frameSizeLimit must be 0 or at least 4096');
    this.#set = set;
    this.#limit = limit;
    this.#initiator = role === 'initiator';
  }

  /** The initiator's first message: the whole range, split into fingerprinted buckets (or ids). */
  initiate(): Uint8Array {
    if (!this.#initiator) throw new Error('only the initiator initiates');
    const out = new Writer();
    out.push([NEG_PROTOCOL_VERSION]);
    this.#splitRange(0, this.#set.size, INFINITY_BOUND, out);
    return out.bytes();
  }

  /**
   * The responder's answer to a message. A message of another protocol version (0x62–0x6f) is
   * answered with the single byte of the version spoken here, as V1 asks. Throws NegentropyError
   * when the message is malformed.
   */
  respond(query: Uint8Array): Uint8Array {
    if (this.#initiator) throw new Error('the initiator calls reconcile()');
    return this.#reconcile(query, [], []) ?? Uint8Array.of(NEG_PROTOCOL_VERSION);
  }

  /** The initiator's handling of a responder message: what it learnt and what to send next. */
  reconcile(answer: Uint8Array): NegentropyRound {
    if (!this.#initiator) throw new Error('the responder calls respond()');
    const have: string[] = [];
    const need: string[] = [];
    const next = this.#reconcile(answer, have, need);
    return { next, have, need };
  }

  #exceeds(n: number): boolean {
    return this.#limit !== 0 && n > this.#limit - 200;
  }

  #reconcile(query: Uint8Array, have: string[], need: string[]): Uint8Array | undefined {
    const set = this.#set;
    const input = new Reader(query);
    const version = input.byte();
    if (version < 0x60 || version > 0x6f) throw new NegentropyError('not a negentropy message (bad protocol version byte)');
    if (version !== NEG_PROTOCOL_VERSION) {
      if (this.#initiator) throw new NegentropyError(`unsupported negentropy protocol version 0x${version.toString(16)}`);
      return Uint8Array.of(NEG_PROTOCOL_VERSION);
    }
    const full = new Writer();
    full.push([NEG_PROTOCOL_VERSION]);
    const size = set.size;
    let prevBound: NegBound = { timestamp: 0, prefix: new Uint8Array(0) };
    let prevIndex = 0;
    /** Index where the last range written to `full` ends (skipped ranges are written lazily). */
    let writtenIndex = 0;
    let skip = false;

    while (!input.done) {
      const out = new Writer();
      full.syncTo(out);
      const flushSkip = () => {
        if (!skip) return;
        skip = false;
        out.bound(prevBound);
        out.push(encodeVarint(MODE_SKIP));
      };
      const currBound = input.bound();
      const mode = input.varint();
      const lower = prevIndex;
      let upper = set.lowerBound(prevIndex, size, currBound);
      let truncated = false;

      if (mode === MODE_SKIP) {
        skip = true;
      } else if (mode === MODE_FINGERPRINT) {
        const theirs = input.bytes(FINGERPRINT_SIZE);
        const ours = set.fingerprint(lower, upper);
        if (compareBytes(theirs, 0, FINGERPRINT_SIZE, ours, 0, FINGERPRINT_SIZE) !== 0) {
          flushSkip();
          this.#splitRange(lower, upper, currBound, out);
        } else skip = true;
      } else if (mode === MODE_ID_LIST) {
        const count = input.varint();
        if (count > input.remaining / ID_SIZE) throw new NegentropyError('id list longer than the message');
        if (this.#initiator) {
          const theirs = new Set<string>();
          for (let i = 0; i < count; i++) theirs.add(bytesToHex(input.bytes(ID_SIZE)));
          for (let i = lower; i < upper; i++) {
            const id = set.idHex(i);
            if (!theirs.delete(id)) have.push(id);
          }
          for (const id of theirs) need.push(id);
          skip = true;
        } else {
          // The responder answers an id list with its own; the initiator works out the difference.
          input.bytes(count * ID_SIZE);
          flushSkip();
          let end = upper;
          for (let i = lower; i < upper; i++) {
            // At least one id per answer, so the new bound lies past the previous one.
            if (i > lower && this.#exceeds(full.length + out.length + (i - lower) * ID_SIZE + 64)) {
              end = i;
              truncated = true;
              break;
            }
          }
          out.bound(truncated ? set.minimalBound(end) : currBound);
          out.push(encodeVarint(MODE_ID_LIST));
          out.push(encodeVarint(end - lower));
          out.push(set.ids.subarray(lower * ID_SIZE, end * ID_SIZE));
          upper = end;
        }
      } else {
        throw new NegentropyError(`unknown range mode ${mode}`);
      }

      const over = this.#exceeds(full.length + out.length);
      if (truncated || over) {
        // Over the frame limit: what is left is sent as one fingerprint, to be split next round.
        let from = writtenIndex;
        if (!over) {
          out.syncTo(full);
          full.append(out);
          from = upper;
        }
        const rest = new Writer();
        full.syncTo(rest);
        rest.bound(INFINITY_BOUND);
        rest.push(encodeVarint(MODE_FINGERPRINT));
        rest.push(set.fingerprint(from, size));
        full.append(rest);
        return full.bytes();
      }
      if (out.length > 0) {
        out.syncTo(full);
        full.append(out);
        writtenIndex = upper;
      }
      prevIndex = upper;
      prevBound = currBound;
    }
    if (this.#initiator && full.length === 1) return undefined;
    return full.bytes();
  }

  /** Describes items [lower, upper) up to `upperBound`: their ids when few, else 16 fingerprinted buckets. */
  #splitRange(lower: number, upper: number, upperBound: NegBound, out: Writer): void {
    const set = this.#set;
    const n = upper - lower;
    if (n < BUCKETS * 2) {
      out.bound(upperBound);
      out.push(encodeVarint(MODE_ID_LIST));
      out.push(encodeVarint(n));
      out.push(set.ids.subarray(lower * ID_SIZE, upper * ID_SIZE));
      return;
    }
    const per = Math.floor(n / BUCKETS);
    const extra = n % BUCKETS;
    let curr = lower;
    for (let i = 0; i < BUCKETS; i++) {
      const size = per + (i < extra ? 1 : 0);
      const fp = set.fingerprint(curr, curr + size);
      curr += size;
      out.bound(curr === upper ? upperBound : set.minimalBound(curr));
      out.push(encodeVarint(MODE_FINGERPRINT));
      out.push(fp);
    }
  }
}
