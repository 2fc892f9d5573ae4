import { createReadStream, createWriteStream, existsSync, statSync } from 'node:fs';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import BetterSqlite3 from 'better-sqlite3';
import type { Database } from 'better-sqlite3';
import { eventSchema } from '../shared/messages/schema.js';
import { loadConfig, readConfigSources } from '../relay/config.js';
import { SqliteStore } from '../relay/store/sqlite.js';
import { verifyEventSync } from '../relay/verify/index.js';
import { parseArgs, println, type CliIo } from './args.js';

const HELP = `roost db — data tools for a relay database

Usage:
  roost db export [--out FILE]             every stored event as JSON lines, oldest first (stdout by default)
  roost db import FILE|-  [--rejects FILE] load JSON lines; every signature is verified, storage rules apply;
                                           refused lines are counted by reason (and written to --rejects)
  roost db stats [--json]                  counts, sizes, kinds, schema
  roost db backup DEST                     online, consistent copy of the database (safe while the relay runs)

Every command takes --db PATH (default: ROOST_DB, else ./data/roost.db).
Import into a stopped relay's database: a running relay would not announce the imported events live.
Sequence numbers are assigned afresh on import.
`;

/** Milliseconds between progress lines. */
const PROGRESS_MS = 1000;

function dbPath(args: ReturnType<typeof parseArgs>, io: CliIo): string {
  return args.options.get('db') ?? loadConfig(readConfigSources(io.env, [])).db;
}

function openReadOnly(path: string): Database {
  if (!existsSync(path)) throw new Error(`no database at ${path}`);
  return new BetterSqlite3(path, { readonly: true, fileMustExist: true });
}

const mib = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MiB`;
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

async function write(out: Writable, text: string): Promise<void> {
  if (!out.write(text)) await once(out, 'drain');
}

/** `roost db export`: JSON lines in sequence order; progress and a summary on stderr. */
export async function exportEvents(path: string, out: Writable, err: Writable, now = () => Date.now()): Promise<{ events: number; bytes: number }> {
  const db = openReadOnly(path);
  try {
    const total = db.prepare('SELECT COUNT(*) FROM events').pluck().get() as number;
    const start = now();
    let lastReport = start;
    let events = 0;
    let bytes = 0;
    let chunk = '';
    for (const raw of db.prepare('SELECT raw FROM events ORDER BY seq').pluck().iterate() as IterableIterator<string>) {
      chunk += raw + '\n';
      events++;
      if (chunk.length > 1 << 16) {
        bytes += Buffer.byteLength(chunk);
        await write(out, chunk);
        chunk = '';
      }
      if (now() - lastReport >= PROGRESS_MS) {
        lastReport = now();
        println(err, `export: ${events} / ${total} events (${Math.floor((100 * events) / Math.max(1, total))}%)`);
      }
    }
    if (chunk) {
      bytes += Buffer.byteLength(chunk);
      await write(out, chunk);
    }
    println(err, `export: ${events} events, ${mib(bytes)} in ${seconds(now() - start)}`);
    return { events, bytes };
  } finally {
    db.close();
  }
}

/** Outcome of an import. */
export interface ImportSummary {
  lines: number;
  imported: number;
  duplicates: number;
  refused: number;
  /** Refusals by reason. */
  reasons: Record<string, number>;
}

/**
 * `roost db import`: parses each line, checks its shape, verifies its id and signature, and writes
 * it through the relay's own store (so replaceable, addressable and deletion rules apply as they
 * would live). Refused lines are counted by reason and optionally written to `rejects`.
 */
export async function importEvents(path: string, input: Readable, err: Writable, rejects?: Writable, now = () => Date.now()): Promise<ImportSummary> {
  const store = new SqliteStore({ path, syncMode: 'normal', commitWindowMs: 5, commitMaxBatch: 2000 });
  const summary: ImportSummary = { lines: 0, imported: 0, duplicates: 0, refused: 0, reasons: {} };
  const refuse = async (line: number, reason: string) => {
    summary.refused++;
    summary.reasons[reason] = (summary.reasons[reason] ?? 0) + 1;
    if (rejects) await write(rejects, JSON.stringify({ line, reason }) + '\n');
  };
  const start = now();
  let lastReport = start;
  let pending: Array<Promise<void>> = [];
  try {
    const lines = createInterface({ input, crlfDelay: Infinity });
    for await (const text of lines) {
      const n = ++summary.lines;
      if (text.trim() === '') continue;
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        await refuse(n, 'invalid: not JSON');
        continue;
      }
      const shape = eventSchema.safeParse(json);
      if (!shape.success) {
        await refuse(n, `invalid: ${shape.error.issues[0]?.path.join('.') || 'event'} ${shape.error.issues[0]?.message ?? ''}`.trim());
        continue;
      }
      const checked = verifyEventSync(shape.data);
      if (!checked.ok) {
        await refuse(n, checked.reason);
        continue;
      }
      pending.push(
        store.write(checked.event).then(async (r) => {
          if (r.status === 'stored') summary.imported++;
          else if (r.status === 'duplicate') summary.duplicates++;
          else await refuse(n, r.reason);
        }),
      );
      if (pending.length >= 2000) {
        await Promise.all(pending);
        pending = [];
      }
      if (now() - lastReport >= PROGRESS_MS) {
        lastReport = now();
        println(err, `import: ${summary.lines} lines read, ${summary.imported} imported, ${summary.refused} refused`);
      }
    }
    await Promise.all(pending);
  } finally {
    await store.close();
  }
  println(
    err,
    `import: ${summary.imported} imported, ${summary.duplicates} already present, ${summary.refused} refused, from ${summary.lines} lines in ${seconds(now() - start)}`,
  );
  for (const [reason, count] of Object.entries(summary.reasons).sort((a, b) => b[1] - a[1])) println(err, `  refused ${count}× ${reason}`);
  return summary;
}

/** Figures about a database file. */
export interface DbStats {
  path: string;
  events: number;
  pubkeys: number;
  lastSeq: number;
  oldest: number | null;
  newest: number | null;
  tags: number;
  deletedIds: number;
  bytes: number;
  walBytes: number;
  freePages: number;
  schema: number[];
  kinds: Array<{ kind: number; events: number }>;
  moderation?: Record<string, number>;
}

/** `roost db stats`. */
export function databaseStats(path: string): DbStats {
  const db = openReadOnly(path);
  try {
    const one = (sql: string) => db.prepare(sql).pluck().get() as number;
    const tables = new Set(db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all() as string[]);
    const span = db.prepare('SELECT MIN(created_at) AS oldest, MAX(created_at) AS newest FROM events').get() as {
      oldest: number | null;
      newest: number | null;
    };
    let walBytes = 0;
    try {
      walBytes = statSync(`${path}-wal`).size;
    } catch {
      walBytes = 0;
    }
    return {
      path,
      events: one('SELECT COUNT(*) FROM events'),
      pubkeys: one('SELECT COUNT(DISTINCT pubkey) FROM events'),
      lastSeq: (db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'events'").pluck().get() as number | undefined) ?? 0,
      oldest: span.oldest,
      newest: span.newest,
      tags: one('SELECT COUNT(*) FROM tags'),
      deletedIds: one('SELECT COUNT(*) FROM deleted_ids'),
      bytes: (db.pragma('page_count', { simple: true }) as number) * (db.pragma('page_size', { simple: true }) as number),
      walBytes,
      freePages: db.pragma('freelist_count', { simple: true }) as number,
      schema: db.prepare('SELECT version FROM schema_migrations ORDER BY version').pluck().all() as number[],
      kinds: db.prepare('SELECT kind, COUNT(*) AS events FROM events GROUP BY kind ORDER BY events DESC, kind LIMIT 10').all() as DbStats['kinds'],
      ...(tables.has('banned_pubkeys')
        ? {
            moderation: {
              bannedPubkeys: one('SELECT COUNT(*) FROM banned_pubkeys'),
              allowedPubkeys: one('SELECT COUNT(*) FROM allowed_pubkeys'),
              bannedEvents: one('SELECT COUNT(*) FROM banned_events'),
              blockedIps: one('SELECT COUNT(*) FROM blocked_ips'),
            },
          }
        : {}),
    };
  } finally {
    db.close();
  }
}

function formatStats(s: DbStats): string {
  const date = (t: number | null) => (t === null ? '–' : new Date(t * 1000).toISOString());
  const rows: Array<[string, string]> = [
    ['database', s.path],
    ['events', String(s.events)],
    ['authors', String(s.pubkeys)],
    ['last sequence number', String(s.lastSeq)],
    ['oldest created_at', date(s.oldest)],
    ['newest created_at', date(s.newest)],
    ['tag rows', String(s.tags)],
    ['deleted ids remembered', String(s.deletedIds)],
    ['file size', mib(s.bytes)],
    ['write-ahead log', mib(s.walBytes)],
    ['free pages', String(s.freePages)],
    ['migrations', s.schema.join(', ')],
    ['top kinds', s.kinds.map((k) => `${k.kind}: ${k.events}`).join(', ') || '–'],
  ];
  if (s.moderation)
    rows.push([
      'moderation',
      Object.entries(s.moderation)
        .map(([k, v]) => `${k} ${v}`)
        .join(', '),
    ]);
  return rows.map(([k, v]) => `${k.padEnd(24)} ${v}`).join('\n') + '\n';
}

/** `roost db backup`: SQLite's online backup, safe while the relay writes; progress on stderr. */
export async function backupDatabase(path: string, dest: string, err: Writable, now = () => Date.now()): Promise<{ pages: number; bytes: number }> {
  if (existsSync(dest)) throw new Error(`${dest} exists; choose a new file`);
  const db = openReadOnly(path);
  const start = now();
  let lastReport = start;
  try {
    const r = await db.backup(dest, {
      progress({ totalPages, remainingPages }) {
        if (now() - lastReport >= PROGRESS_MS) {
          lastReport = now();
          println(err, `backup: ${totalPages - remainingPages} / ${totalPages} pages`);
        }
        // Large steps: each step holds the read lock briefly, and fewer steps mean fewer restarts under writes.
        return 1000;
      },
    });
    const bytes = statSync(dest).size;
    println(err, `backup: ${r.totalPages} pages, ${mib(bytes)} written to ${dest} in ${seconds(now() - start)}`);
    return { pages: r.totalPages, bytes };
  } finally {
    db.close();
  }
}

/** `roost db ...`; returns the exit code. */
export async function runDb(argv: readonly string[], io: CliIo): Promise<number> {
  let args;
  try {
    args = parseArgs(argv, ['json', 'help']);
  } catch (e) {
    println(io.stderr, `roost db: ${(e as Error).message}`);
    return 2;
  }
  const [command, ...rest] = args.positional;
  if (!command || command === 'help' || args.options.has('help')) {
    io.stdout.write(HELP);
    return command || args.options.has('help') ? 0 : 2;
  }
  try {
    const path = dbPath(args, io);
    if (/^postgres(ql)?:\/\//.test(path)) {
      println(io.stderr, 'roost db: works on SQLite files; for a PostgreSQL database use pg_dump and pg_restore (docs/deploy.md)');
      return 2;
    }
    switch (command) {
      case 'export': {
        const outPath = args.options.get('out');
        const out = outPath && outPath !== '-' ? createWriteStream(outPath) : io.stdout;
        await exportEvents(path, out, io.stderr);
        if (out !== io.stdout) {
          out.end();
          await once(out, 'finish');
        }
        return 0;
      }
      case 'import': {
        const from = rest[0];
        if (!from) throw new Error('import needs a file (or - for stdin)');
        if (from !== '-' && !existsSync(from)) throw new Error(`no file at ${from}`);
        const input = from === '-' ? io.stdin : createReadStream(from);
        const rejectsPath = args.options.get('rejects');
        const rejects = rejectsPath ? createWriteStream(rejectsPath) : undefined;
        const summary = await importEvents(path, input, io.stderr, rejects);
        if (rejects) {
          rejects.end();
          await once(rejects, 'finish');
        }
        return summary.refused > 0 ? 1 : 0;
      }
      case 'stats': {
        const s = databaseStats(path);
        io.stdout.write(args.options.has('json') ? JSON.stringify(s, null, 2) + '\n' : formatStats(s));
        return 0;
      }
      case 'backup': {
        const dest = rest[0] ?? args.options.get('out');
        if (!dest) throw new Error('backup needs a destination file');
        await backupDatabase(path, dest, io.stderr);
        return 0;
      }
      default:
        println(io.stderr, `roost db: unknown command ${JSON.stringify(command)}\n`);
        io.stderr.write(HELP);
        return 2;
    }
  } catch (e) {
    println(io.stderr, `roost db: ${(e as Error).message}`);
    return 1;
  }
}
