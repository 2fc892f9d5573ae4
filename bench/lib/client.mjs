// The load generator's side of the wire: raw `ws` sockets, frames pre-encoded as Buffers, and inbound
// frames classified by their first bytes so the hot path never JSON-parses an EVENT or OK.
import WebSocket from 'ws';
import { sleep } from './stats.mjs';

const SOCKET_OPTIONS = { perMessageDeflate: false, skipUTF8Validation: true, maxPayload: 64 * 1024 * 1024 };

/** Frame kinds returned by {@link frameKind}. */
export const K = { EVENT: 1, EOSE: 2, OK: 3, CLOSED: 4, NOTICE: 5, AUTH: 6, COUNT: 7, OTHER: 0 };

const Q = 0x22; // "
const BRACKET = 0x5b; // [

/** Kind of a relay → client frame from its leading bytes (`["EVENT"` …), without parsing it. */
export function frameKind(buf) {
  if (buf[0] !== BRACKET || buf[1] !== Q) return kindSlow(buf);
  switch (buf[2]) {
    case 0x45: // E
      return buf[3] === 0x56 ? K.EVENT : buf[3] === 0x4f ? K.EOSE : K.OTHER;
    case 0x4f: // O
      return K.OK;
    case 0x43: // C
      return buf[3] === 0x4c ? K.CLOSED : K.COUNT;
    case 0x4e:
      return K.NOTICE;
    case 0x41:
      return K.AUTH;
    default:
      return K.OTHER;
  }
}

function kindSlow(buf) {
  try {
    const v = JSON.parse(buf.toString('utf8'));
    return K[v?.[0]] ?? K.OTHER;
  } catch {
    return K.OTHER;
  }
}

const OK_TRUE = Buffer.from('true');

/** `{ id, accepted, reason? }` of an OK frame; fast path for compact JSON, parses otherwise. */
export function parseOk(buf) {
  // ["OK","<64 hex>",true,""]  → id at 7..71, boolean at 73
  if (buf[0] === BRACKET && buf[1] === Q && buf[6] === Q && buf[71] === Q && buf[72] === 0x2c) {
    const id = buf.latin1Slice(7, 71);
    if (buf.compare(OK_TRUE, 0, 4, 73, 77) === 0) return { id, accepted: true };
    if (buf[73] === 0x66) return { id, accepted: false, reason: reasonOf(buf) };
  }
  const v = JSON.parse(buf.toString('utf8'));
  return { id: v[1], accepted: v[2] === true, reason: v[3] };
}

function reasonOf(buf) {
  try {
    return String(JSON.parse(buf.toString('utf8'))[3] ?? '');
  } catch {
    return '';
  }
}

const ID_KEY = Buffer.from('"id":"');
const CREATED_KEY = Buffer.from('"created_at":');

/** The event id inside an EVENT frame (first `"id":"`), as a string. */
export function eventIdOf(buf) {
  const i = buf.indexOf(ID_KEY);
  return i < 0 ? undefined : buf.latin1Slice(i + 6, i + 70);
}

/** The created_at number inside an EVENT frame. */
export function createdAtOf(buf) {
  let i = buf.indexOf(CREATED_KEY);
  if (i < 0) return NaN;
  i += CREATED_KEY.length;
  while (buf[i] === 0x20) i++;
  let n = 0;
  for (let c = buf[i]; c >= 0x30 && c <= 0x39; c = buf[++i]) n = n * 10 + (c - 0x30);
  return n;
}

/** Subscription id of an EVENT/EOSE/CLOSED frame when it is a short plain string. */
export function subIdOf(buf) {
  const start = buf.indexOf(Q, buf.indexOf(0x2c)) + 1;
  const end = buf.indexOf(Q, start);
  return buf.latin1Slice(start, end);
}

/** Encodes a frame (string or array) once, for repeated sending as a text frame. */
export function encode(frame) {
  return Buffer.from(typeof frame === 'string' ? frame : JSON.stringify(frame));
}

/**
 * Opens one WebSocket to `url`; `onFrame(buf)` gets every inbound text frame as a Buffer.
 * Rejects after `timeoutMs`.
 */
export function connect(url, onFrame, timeoutMs = 10_000) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, SOCKET_OPTIONS);
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`connect to ${url} timed out`));
    }, timeoutMs);
    ws.on('message', (data) => onFrame(data));
    ws.once('open', () => {
      clearTimeout(timer);
      resolve(ws);
    });
    ws.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    ws.on('error', () => {});
  });
}

/** Sends a pre-encoded frame as text. */
export function sendText(ws, buf) {
  ws.send(buf, { binary: false });
}

/** Opens `n` sockets, at most `parallel` handshakes at a time; `makeHandler(i)` gives each its onFrame. */
export async function connectMany(url, n, makeHandler, parallel = 50) {
  const sockets = new Array(n);
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      sockets[i] = await connect(url, makeHandler(i));
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, n) }, worker));
  return sockets;
}

/** Closes sockets and waits (bounded) for them to finish closing. */
export async function closeAll(sockets, waitMs = 2000) {
  const pending = [];
  for (const ws of sockets) {
    if (!ws || ws.readyState === WebSocket.CLOSED) continue;
    pending.push(new Promise((r) => ws.once('close', r)));
    ws.close();
  }
  await Promise.race([Promise.all(pending), sleep(waitMs)]);
  for (const ws of sockets) if (ws && ws.readyState !== WebSocket.CLOSED) ws.terminate();
}

/** Resolves when `predicate()` is true, polling every `everyMs`; false if `timeoutMs` passes first. */
export async function waitUntil(predicate, timeoutMs, everyMs = 5) {
  const until = performance.now() + timeoutMs;
  while (!predicate()) {
    if (performance.now() > until) return false;
    await sleep(everyMs);
  }
  return true;
}
