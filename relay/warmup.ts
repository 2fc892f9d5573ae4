import { createServer } from 'node:http';
import { type AddressInfo, type Socket, connect } from 'node:net';
import type { Database } from 'better-sqlite3';
import { finalizeEvent, generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import type { WebSocket, WebSocketServer } from 'ws';
import { Kind } from '../shared/kinds.js';
import { installUpgradePath } from './upgrade.js';

/**
 * Start-up warm-up: before the relay listens, it serves synthetic agents over a loopback listener of its own
 * through its real accept path (Node's HTTP parser, the upgrade, `ws`'s handshake, the connection set-up,
 * frame validation, the REQ plan, the store's statements, the encoder, NIP-42 AUTH, close and teardown), and
 * walks the tag index mail is read by. Without it the first clients after a start pay for compiling that whole
 * path (the first synthetic agent takes ~140 ms, later ones a few ms while the code is still interpreted).
 * Measured (docs/performance.md): it takes that first-use cost off the first clients, but a first reconnect
 * storm still costs more than a warm one; the rest is V8's tier-up over the first few thousand agents, which
 * a budget of a few hundred milliseconds does not reach.
 *
 * It changes nothing a client or operator can see: the agents are served by a context of their own (fresh
 * statistics, subscription index, online map and policies, and no delivery, AUTH or store hooks), they only
 * read, their AUTH is a throwaway key's, and the loopback listener is closed before the relay's own one
 * opens. Bounded by `budgetMs` of wall-clock time (`ROOST_WARMUP_MS`, 0 turns it off): agents stop starting at
 * the budget and any still open are cut off.
 */

/** What the warm-up did, for the start-up log and tests. */
export interface WarmUpReport {
  /** Agents that got their EOSE (and were closed). */
  agents: number;
  /** Of them, agents that authenticated (NIP-42) and read a private kind. */
  authed: number;
  /** Stored events received by the agents (read-only answers to mail that exists). */
  events: number;
  /** Index and table rows touched to bring the database's pages into the memory map. */
  rows: number;
  /** Wall-clock milliseconds spent. */
  ms: number;
}

export interface WarmUpOptions {
  budgetMs: number;
  /** Accepts an upgraded socket into the relay (with the warm-up's own context). */
  accept(socket: WebSocket, ip: string, tcp: Socket): void;
  /** A `ws` server in `noServer` mode with the relay's socket options. */
  wss: WebSocketServer;
  /** The SQLite database, read to sample real mail and touch its pages (absent on other stores). */
  db?: Database;
  /** Most agents (the budget usually ends the run first on a loaded machine). */
  maxAgents?: number;
  /** Agents at once. */
  concurrency?: number;
  /** Milliseconds since some origin (tests may replace it). */
  clock?: () => number;
  /** Told the loopback port once it listens (tests). */
  onListening?: (port: number) => void;
}

/** A mailbox to read: a tag value that has mail, and the cursor just before it. */
interface Target {
  value: string;
  since: number;
  seqAfter: number;
}

/** Share of the budget spent touching database pages before the agents run. */
const PREFAULT_SHARE = 0.1;
/** Every n-th agent authenticates and reads a private kind (signing costs the warm-up ~1 ms each). */
const AUTH_EVERY = 4;
const MAX_AUTHED = 16;

export async function warmUp(opts: WarmUpOptions): Promise<WarmUpReport> {
  const clock = opts.clock ?? (() => performance.now());
  const start = clock();
  const deadline = start + opts.budgetMs;
  const report: WarmUpReport = { agents: 0, authed: 0, events: 0, rows: 0, ms: 0 };
  if (opts.budgetMs <= 0) return report;
  let targets: Target[] = [];
  try {
    if (opts.db) targets = sampleTargets(opts.db, 64);
  } catch {
    // a schema without these tables or indexes: the agents read empty mailboxes
  }
  if (opts.db) report.rows = touchPages(opts.db, start + opts.budgetMs * PREFAULT_SHARE, clock);

  const server = createServer();
  const open = new Set<Socket>();
  // Only the warm-up's own agents are served: another local process that finds the port is refused.
  const ownPorts = new Set<number>();
  const FOREIGN = '';
  const uninstall = installUpgradePath({
    server,
    wss: opts.wss,
    clientAddress: (req) => (ownPorts.has(req.socket.remotePort ?? -1) ? (req.socket.remoteAddress ?? '127.0.0.1') : FOREIGN),
    admit: (ip) => (ip === FOREIGN ? { status: 403, body: 'this port serves the relay start-up warm-up only' } : undefined),
    accept: opts.accept,
    closing: () => false,
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  opts.onListening?.(port);
  const url = `ws://127.0.0.1:${port}`;
  const maxAgents = opts.maxAgents ?? 5000;
  const concurrency = opts.concurrency ?? 64;
  let started = 0;
  let authStarted = 0;
  try {
    await new Promise<void>((resolve) => {
      let running = 0;
      const next = (): void => {
        while (running < concurrency && started < maxAgents && clock() < deadline) {
          const n = started++;
          const authed = n % AUTH_EVERY === AUTH_EVERY - 1 && authStarted < MAX_AUTHED;
          if (authed) authStarted++;
          running++;
          runAgent(port, url, n, authed, targets[n % Math.max(1, targets.length)], open, ownPorts, report).finally(() => {
            running--;
            next();
          });
        }
        if (running === 0) resolve();
      };
      // Agents still open at the deadline are cut off (their 'close' ends them).
      const cut = setTimeout(
        () => {
          for (const tcp of open) tcp.destroy();
        },
        Math.max(0, deadline - clock()),
      );
      cut.unref();
      next();
    });
  } finally {
    for (const tcp of open) tcp.destroy();
    uninstall();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  report.ms = Math.round(clock() - start);
  return report;
}

/**
 * The agents' side is a bare TCP client that writes pre-built bytes (the upgrade request with the first REQ
 * pipelined behind it, masked with a zero key) and only looks for markers in what comes back, so the budget
 * is spent on the relay's path rather than on a second WebSocket implementation.
 */
const UPGRADE_HEAD = (port: number) =>
  `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: cm9vc3Qtd2FybS11cC0wMQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`;
const CLOSE_FRAME = Buffer.from([0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]);
const EOSE = Buffer.from('["EOSE"');
const EVENT = Buffer.from('["EVENT"');
const AUTH = Buffer.from('["AUTH","');
const OK_TRUE = Buffer.from('",true,');

/** A client frame: text, FIN, masked with the zero key (so the payload is written as is). */
function clientFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0x81, 0x80 | len, 0, 0, 0, 0]) : Buffer.from([0x81, 0x80 | 126, len >> 8, len & 0xff, 0, 0, 0, 0]);
  return Buffer.concat([head, payload]);
}

/** One agent: connect → (AUTH when its REQ asks for it) → REQ → stored events → EOSE → close. */
function runAgent(
  port: number,
  url: string,
  n: number,
  authed: boolean,
  target: Target | undefined,
  open: Set<Socket>,
  ownPorts: Set<number>,
  report: WarmUpReport,
): Promise<void> {
  return new Promise((resolve) => {
    const key = authed ? generateSecretKey() : undefined;
    // A public read goes to mail that exists, so rows are read and encoded; a private one to the throwaway
    // key's own (empty) inbox, the only one it may read.
    const value = target?.value ?? 'f'.repeat(64);
    const filter = key
      ? { kinds: [Kind.GiftWrap], '#p': [getPublicKey(key)], seq_after: 0 }
      : n % 2 === 0
        ? { kinds: [1], '#p': [value], since: target?.since ?? 0 }
        : { kinds: [1], '#p': [value], seq_after: target?.seqAfter ?? 0 };
    const req = clientFrame(JSON.stringify(['REQ', `w${n}`, filter]));
    const tcp = connect({ port, host: '127.0.0.1', noDelay: true });
    open.add(tcp);
    let seen: Buffer = Buffer.alloc(0);
    let state: 'reading' | 'auth' | 'closing' = 'reading';
    // Known as the warm-up's own before its upgrade request leaves.
    let ownPort: number | undefined;
    tcp.once('connect', () => {
      ownPort = tcp.localPort!;
      ownPorts.add(ownPort);
      tcp.write(Buffer.concat([Buffer.from(UPGRADE_HEAD(port)), req]));
    });
    tcp.on('data', (chunk: Buffer) => {
      if (state === 'closing') return;
      for (let at = chunk.indexOf(EVENT); at >= 0; at = chunk.indexOf(EVENT, at + EVENT.length)) report.events++;
      // Only the tail can hold a marker split across chunks.
      seen = seen.length === 0 ? chunk : Buffer.concat([seen.subarray(Math.max(0, seen.length - 128)), chunk]);
      if (seen.includes(EOSE)) {
        report.agents++;
        if (authed) report.authed++;
        state = 'closing';
        tcp.write(CLOSE_FRAME);
        return;
      }
      if (key && state === 'reading') {
        const at = seen.indexOf(AUTH);
        if (at < 0 || seen.length < at + AUTH.length + 32) return;
        state = 'auth';
        const challenge = seen.toString('latin1', at + AUTH.length, at + AUTH.length + 32);
        const ev = finalizeEvent(
          {
            kind: Kind.ClientAuth,
            created_at: Math.floor(Date.now() / 1000),
            tags: [
              ['relay', url],
              ['challenge', challenge],
            ],
            content: '',
          },
          key,
        );
        tcp.write(clientFrame(JSON.stringify(['AUTH', ev])));
      } else if (state === 'auth' && seen.includes(OK_TRUE)) {
        state = 'reading';
        seen = Buffer.alloc(0);
        tcp.write(req);
      }
    });
    tcp.on('error', () => tcp.destroy());
    tcp.on('end', () => tcp.end());
    tcp.on('close', () => {
      open.delete(tcp);
      if (ownPort !== undefined) ownPorts.delete(ownPort);
      resolve();
    });
  });
}

/** Real mailboxes to read: `p` tag values at seqs spread over the file, each with the cursor just before it. */
function sampleTargets(db: Database, n: number): Target[] {
  const last = (db.prepare('SELECT max(seq) AS m FROM events').get() as { m: number | null }).m ?? 0;
  if (last === 0) return [];
  const at = db.prepare(
    "SELECT value, seq, created_at FROM tags INDEXED BY tags_seq WHERE seq >= ? AND name = 'p' AND length(value) = 64 ORDER BY seq LIMIT 1",
  );
  const out: Target[] = [];
  for (let i = 0; i < n; i++) {
    const r = at.get(1 + Math.floor(((i + 0.5) * last) / n)) as { value: string; seq: number; created_at: number } | undefined;
    if (r) out.push({ value: r.value, since: r.created_at - 1, seqAfter: r.seq - 1 });
  }
  return out;
}

/**
 * Walks the tag indexes mail is read by ((name, value, seq) and (name, value, created_at, seq)) and the events table, so their pages are in the
 * process's memory map before the first reader needs them; stops at `until`.
 */
function touchPages(db: Database, until: number, clock: () => number): number {
  let rows = 0;
  const walks = [
    // Covering index scans (no table rows): the index pages only.
    "SELECT seq FROM tags INDEXED BY tags_value_seq WHERE name = 'p'",
    // The index newest-first reads (`since`) walk (migration 0008).
    "SELECT seq FROM tags INDEXED BY tags_created_seq WHERE name = 'p'",
    // No index covers these columns: the table's own pages, in rowid order.
    'SELECT d_tag, expires_at FROM events',
  ];
  for (const sql of walks) {
    let stmt;
    try {
      stmt = db.prepare(sql);
    } catch {
      continue; // an older schema without the index
    }
    for (const _ of stmt.iterate()) {
      if ((++rows & 1023) === 0 && clock() >= until) {
        // Ends the statement (return() resets it).
        return rows;
      }
    }
  }
  return rows;
}
