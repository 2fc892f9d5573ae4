// The comparison peer: @nostr-relay/core served over `ws` with its SQLite event repository, wired
// the way the library's README shows (validator → relay.handleMessage, handleConnection /
// handleDisconnect). Library defaults are kept; only the listen address and database file are set.
// Environment: PORT, HOST (default 127.0.0.1), PEER_DB (SQLite file, default in-memory), and
// PEER_PRELOAD: a JSON-lines file of events stored through the repository before listening (the
// harness's unmeasured pre-load; lines that are not events are skipped).
import { createOutgoingNoticeMessage, LogLevel } from '@nostr-relay/common';
import { NostrRelay } from '@nostr-relay/core';
import { EventRepositorySqlite } from '@nostr-relay/event-repository-sqlite';
import { Validator } from '@nostr-relay/validator';
import { readFileSync } from 'node:fs';
import { WebSocketServer } from 'ws';

const port = Number(process.env.PORT ?? 4869);
const host = process.env.HOST ?? '127.0.0.1';
const file = process.env.PEER_DB || ':memory:';

const repository = new EventRepositorySqlite(file);
await repository.init();
const db = repository.getDatabase();
if (process.env.PEER_PRELOAD) {
  const t0 = performance.now();
  let n = 0;
  for (const line of readFileSync(process.env.PEER_PRELOAD, 'utf8').split('\n')) {
    if (!line.startsWith('{"id"')) continue;
    await repository.upsert(JSON.parse(line));
    n++;
  }
  console.log(JSON.stringify({ msg: 'peer preloaded', events: n, ms: Math.round(performance.now() - t0) }));
}
const relay = new NostrRelay(repository, { logLevel: LogLevel.ERROR });
const validator = new Validator();
const wss = new WebSocketServer({ port, host });

wss.on('connection', (ws) => {
  relay.handleConnection(ws);
  ws.on('message', async (data) => {
    try {
      const message = await validator.validateIncomingMessage(data);
      await relay.handleMessage(ws, message);
    } catch (err) {
      if (err instanceof Error) ws.send(JSON.stringify(createOutgoingNoticeMessage(err.message)));
    }
  });
  ws.on('close', () => relay.handleDisconnect(ws));
  ws.on('error', () => relay.handleDisconnect(ws));
});

wss.on('listening', () => {
  const journal = db.pragma('journal_mode', { simple: true });
  const sync = db.pragma('synchronous', { simple: true });
  console.log(JSON.stringify({ msg: 'peer listening', url: `ws://${host}:${port}`, db: file, journal, synchronous: sync }));
});

const stop = () => {
  wss.close();
  void relay
    .destroy()
    .then(() => repository.destroy())
    .finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
