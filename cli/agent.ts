import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import {
  ClientError,
  Identity,
  createNodeAgent,
  discoverLocal,
  defaultAgentHome,
  getNpub,
  isRotationDue,
  loadKeyFile,
  openKeyRing,
  parseRotationInterval,
  parsePubkey,
  revokeKeyRing,
  rotateKeyRing,
  saveKeyFile,
  saveRotationInterval,
  SqliteAgentStore,
  normalizeRelayUrl,
  type Agent,
  type AgentInfo,
  type InboxMessage,
} from '../client/node/index.js';
import type { NostrEvent } from '../shared/event.js';
import type { Filter } from '../shared/filter.js';
import { Kind } from '../shared/kinds.js';
import { runTaskCommand, TASK_HELP, TaskUsageError } from './agent-task.js';

/** Where the CLI writes, and the environment it reads (injected so tests run it in-process). */
export interface CliIo {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
  env: Record<string, string | undefined>;
  /** Resolves when the user interrupts (Ctrl-C); `tail` and `inbox --follow` stop then. */
  interrupted?: Promise<void>;
}

const HELP = `roost agent — a thin Nostr agent from the command line

Usage:
  roost agent keygen [--force]                 create this agent's key (mode 0600) and print its npub
  roost agent whoami                           print npub, hex pubkey, key file and relays; with a key event
                                               log also the agent id, next-key commitment and retired keys
  roost agent send <to> <message...>           send an end-to-end encrypted direct message
        [--request] [--timeout SEC]            ... and wait for the answer (request/response)
  roost agent inbox [--follow] [--limit N]     print everything addressed to me since the stored
        [--timeout SEC]                        cursor, once, then advance the cursor
  roost agent tail [--kind K]... [--author PK]... [--limit N]
                                               stream live events (default: addressed to me); no cursor
  roost agent outbox [--purge [ID...]]         list events not yet acknowledged by every relay; --purge drops
                                               them (all, the IDs given, or with --relay only that relay's share)
  roost agent discover [--capability C]... [--min-reputation R]
                                               find agents offering every capability, with presence
                                               (R in 0-1: only those whose signed history scores R)
  roost agent identity [--print-next]          create (once) the next key and the key event log, publish the log;
                                               --print-next also prints the next secret key for an offline backup
  roost agent rotate                           make the next key current (the current key co-signs), commit a
                                               new next key, publish the log; the old key is kept in retired/
  roost agent rotate --every D                 rotate on a schedule instead: keep the interval D (1h-365d, like
                                               30d, 12h, 2w; off stops it) in the home; the agent rotates when it
                                               starts with a key older than D (now too, if it already is)
  roost agent revoke [--reason R]              key compromised: the next key alone ends the current key at once
  roost agent discover --local [--timeout SEC] relays and agents on this LAN (mDNS/DNS-SD, default 2 s);
                                               a relay is listed only once its NIP-11 names the key it advertised
  roost agent card --name N [--description D] [--capability C]... [--version V]
                                               publish this agent's card (what discover finds)
${TASK_HELP}
Options:
  --home DIR     agent home: agent.key, agent.next.key, agent.kel.jsonl and agent.db (default $ROOST_AGENT_HOME or ~/.roost)
  --relay URL    relay to use; repeat for several (default $ROOST_RELAYS, comma-separated)
  --json         machine-readable output: one JSON object per line
  -h, --help     this text

<to> and --author take an npub1…, a nostr:npub1… URI or 64 hex characters. tail prints events from
5 seconds ago on (gift wraps: from now on) and, with --limit N, exits after the Nth; without it, until Ctrl-C.
Exit status: 0 ok, 1 failed, 2 usage.
`;

const OPTIONS = {
  home: { type: 'string' },
  relay: { type: 'string', multiple: true },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  force: { type: 'boolean' },
  request: { type: 'boolean' },
  timeout: { type: 'string' },
  follow: { type: 'boolean' },
  purge: { type: 'boolean' },
  limit: { type: 'string' },
  kind: { type: 'string', multiple: true },
  author: { type: 'string', multiple: true },
  capability: { type: 'string', multiple: true },
  local: { type: 'boolean' },
  name: { type: 'string' },
  description: { type: 'string' },
  version: { type: 'string' },
  reason: { type: 'string' },
  'print-next': { type: 'boolean' },
  'min-reputation': { type: 'string' },
  every: { type: 'string' },
  to: { type: 'string' },
  deadline: { type: 'string' },
  note: { type: 'string' },
} satisfies ParseArgsConfig['options'];

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

class UsageError extends Error {}

/** parseArgs' own messages quote unevenly and mention internals; say which option and what to do. */
function describeArgError(err: unknown): string {
  const e = err as { code?: string; message: string };
  const option = /'(-[^' ]+)/.exec(e.message)?.[1];
  switch (e.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${option ?? ''}`.trim();
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return /argument missing/.test(e.message) ? `option ${option ?? ''} needs a value` : `option ${option ?? ''} takes no value`;
    default:
      return e.message;
  }
}

/** Quotes a path for a shell command the user can paste. */
function quoteArg(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", "'\\''")}'`;
}

function num(v: string | undefined, what: string, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`${what} must be a non-negative number`);
  return n;
}

const short = (pk: string) => {
  const n = getNpub(pk);
  return `${n.slice(0, 12)}…${n.slice(-6)}`;
};

const when = (sec: number | undefined, nowSec: number) => {
  if (sec === undefined) return 'never';
  const d = nowSec - sec;
  if (d < 60) return 'just now';
  if (d < 3600) return `${Math.floor(d / 60)} min ago`;
  if (d < 86400) return `${Math.floor(d / 3600)} h ago`;
  return new Date(sec * 1000).toISOString().slice(0, 16).replace('T', ' ');
};

/** Runs `roost agent …`; returns the exit status. */
export async function runAgentCli(argv: string[], io: CliIo): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    io.stderr.write(`roost agent: ${describeArgError(err)}\n(roost agent --help lists the options)\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [command, ...args] = positionals;
  if (values.help || command === 'help') {
    io.stdout.write(HELP);
    return 0;
  }
  if (command === undefined) {
    io.stderr.write(`roost agent: missing command\n\n${HELP}`);
    return 2;
  }
  const out = (human: string, json: unknown) => io.stdout.write(values.json ? JSON.stringify(json) + '\n' : human + '\n');
  const home = values.home ?? io.env.ROOST_AGENT_HOME ?? defaultAgentHome();
  const keygenHint = `roost agent keygen${values.home === undefined ? '' : ` --home ${quoteArg(values.home)}`}`;
  const keyFile = join(home, 'agent.key');
  const relays =
    values.relay ??
    (io.env.ROOST_RELAYS ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  let agent: Agent | undefined;
  try {
    const needAgent = (opts: { inbox?: boolean } = {}) => {
      if (!existsSync(keyFile)) throw new UsageError(`no key in ${home}: run \`${keygenHint}\` first${values.home === undefined ? ' (or pass --home)' : ''}`);
      if (relays.length === 0) throw new UsageError('no relay: pass --relay URL or set ROOST_RELAYS');
      // A home with a key event log runs on its key ring: the log is published, mail to retired keys is read
      // during their grace period, cards name the agent id. A bare key stays a bare key (`identity` makes the log).
      const ring = existsSync(join(home, 'agent.kel.jsonl')) ? { keyRing: true } : { identity: loadKeyFile(keyFile) };
      agent = createNodeAgent({ home, relays, ...ring, inbox: opts.inbox ?? false, heartbeatSeconds: 0 });
      // say at once why a relay cannot be reached (refused, DNS, TLS, HTTP 429…), once per relay and cause
      const told = new Set<string>();
      agent.on('disconnected', (relay, reason) => {
        if (reason === 'closed by the client' || told.has(`${relay} ${reason}`)) return;
        told.add(`${relay} ${reason}`);
        io.stderr.write(`roost agent: ${relay}: ${reason} (retrying; unacknowledged events stay in the outbox)\n`);
      });
      return agent;
    };
    switch (command) {
      case 'keygen': {
        if (existsSync(keyFile) && !values.force) throw new UsageError(`${keyFile} already exists (use --force to replace it, losing that identity)`);
        if (existsSync(join(home, 'agent.kel.jsonl'))) {
          throw new UsageError(`${home} has a key event log: replace the key with \`roost agent rotate\` or \`revoke\`, not keygen`);
        }
        const id = Identity.generate();
        saveKeyFile(keyFile, id, { overwrite: values.force === true });
        out(`created ${keyFile}\n${id.npub}`, { npub: id.npub, pubkey: id.pubkey, keyFile });
        return 0;
      }
      case 'whoami': {
        if (!existsSync(keyFile)) throw new UsageError(`no key in ${home}: run \`${keygenHint}\` first`);
        const id = loadKeyFile(keyFile);
        let human = `${id.npub}\npubkey  ${id.pubkey}\nkey     ${keyFile}\nrelays  ${relays.join(' ') || '(none)'}`;
        // With a key event log: the identity, its current key, the next-key commitment and the keys still read.
        if (!existsSync(join(home, 'agent.kel.jsonl'))) {
          out(human, { npub: id.npub, pubkey: id.pubkey, keyFile, relays });
          return 0;
        }
        const ring = openKeyRing(home);
        const nowSec = Math.floor(Date.now() / 1000);
        const retired = ring.log.keys
          .filter((k) => k.pubkey !== ring.current.pubkey)
          .map((k) => ({ pubkey: k.pubkey, end: k.end ?? 'current', until: k.until ?? null, read: k.end === 'rotated' && (k.until ?? 0) > nowSec }));
        human = `${ring.current.npub}\naid     ${ring.aid}\npubkey  ${ring.current.pubkey} (key event ${ring.log.head.seq})\nnext    sha256 commitment ${ring.log.head.next}\nkey     ${keyFile}\nrelays  ${relays.join(' ') || '(none)'}`;
        for (const r of retired) {
          const when = r.until === null ? '' : ` ${new Date(r.until * 1000).toISOString()}`;
          human += `\nretired ${r.pubkey} ${r.end}${r.end === 'rotated' ? `, grace ${r.read ? 'ends' : 'ended'}${when}` : when}`;
        }
        out(human, {
          npub: ring.current.npub,
          pubkey: ring.current.pubkey,
          aid: ring.aid,
          seq: ring.log.head.seq,
          nextKeyDigest: ring.log.head.next,
          retired,
          keyFile,
          relays,
        });
        return 0;
      }
      case 'send':
        // Usage before the key: `roost agent send` alone is a usage mistake, not a missing key.
        if (args.length < 2) throw new UsageError('send needs <to> and a message: roost agent send <to> <message...>');
        return await send(needAgent({ inbox: values.request === true }), args, values, out);
      case 'inbox':
        return await inbox(needAgent({ inbox: true }), values, io, out);
      case 'tail':
        return await tail(needAgent(), values, io, out);
      case 'outbox':
        return await outbox(home, values, args, out);
      case 'discover':
        if (values.local) return await discoverOnLan(values, out);
        return await discover(needAgent(), values, out);
      case 'identity':
      case 'rotate':
      case 'revoke': {
        if (!existsSync(keyFile)) throw new UsageError(`no key in ${home}: run \`${keygenHint}\` first`);
        if (values.every !== undefined && command !== 'rotate') throw new UsageError('--every goes with rotate');
        let schedule: { everySeconds: number; rotated: boolean } | undefined;
        if (values.every !== undefined) {
          let everySeconds: number;
          try {
            everySeconds = parseRotationInterval(values.every);
          } catch (err) {
            throw new UsageError((err as Error).message);
          }
          saveRotationInterval(home, everySeconds);
          schedule = { everySeconds, rotated: isRotationDue(openKeyRing(home), everySeconds, Math.floor(Date.now() / 1000)) };
        }
        const ring =
          command === 'identity' || (schedule && !schedule.rotated)
            ? openKeyRing(home)
            : command === 'rotate'
              ? rotateKeyRing(home).ring
              : revokeKeyRing(home, values.reason === undefined ? {} : { reason: values.reason }).ring;
        // the one deliberate way a secret leaves the ring: asked for by name, for paper or offline storage
        const backup = values['print-next'] ? { nextNsec: ring.next.exportNsec() } : {};
        const summary = {
          aid: ring.aid,
          pubkey: ring.current.pubkey,
          seq: ring.log.head.seq,
          nextKeyFile: join(home, 'agent.next.key'),
          ...backup,
          ...(schedule ? { rotationIntervalSeconds: schedule.everySeconds, rotated: schedule.rotated } : {}),
        };
        let human = `identity ${ring.aid}\ncurrent  ${getNpub(ring.current.pubkey)} (key event ${ring.log.head.seq})\nnext key ${summary.nextKeyFile} (keep a copy offline)`;
        if (schedule) {
          human +=
            schedule.everySeconds === 0
              ? '\nrotation schedule off'
              : `\nrotates every ${schedule.everySeconds} s when the agent starts (next due ${new Date((ring.log.head.created_at + schedule.everySeconds) * 1000).toISOString()})${schedule.rotated ? '; rotated now' : ''}`;
        }
        if (backup.nextNsec) human += `\nnext secret key (store it offline, apart from ${keyFile}): ${backup.nextNsec}`;
        if (relays.length === 0) {
          out(`${human}\nnot published: pass --relay URL or set ROOST_RELAYS`, { ...summary, published: [] });
          return 0;
        }
        const a = needAgent();
        await a.start();
        const timeoutMs = num(values.timeout, '--timeout', 10) * 1000;
        // the whole log, oldest first: a relay that missed an event gets it, one that has it answers duplicate
        const published = [];
        for (const ev of ring.events) published.push(await a.publishSigned(ev, { timeoutMs }));
        const refused = published.flatMap((p) => p.relays.filter((r) => !r.accepted).map((r) => `${r.relay}: ${r.reason}`));
        out(refused.length === 0 ? `${human}\npublished ${published.length} key events` : `${human}\nrefused: ${refused.join('; ')}`, {
          ...summary,
          published: published.map((p) => ({ id: p.id, relays: p.relays })),
        });
        return refused.length === 0 ? 0 : 1;
      }
      case 'card': {
        if (!values.name) throw new UsageError('card needs --name');
        const a = needAgent();
        await a.start();
        const r = await a.publishCard(
          { name: values.name, description: values.description ?? '', capabilities: values.capability ?? [], version: values.version ?? '' },
          { timeoutMs: num(values.timeout, '--timeout', 10) * 1000 },
        );
        out(`published card ${r.id.slice(0, 12)}… for ${a.npub}`, { id: r.id, relays: r.relays });
        return 0;
      }
      case 'task': {
        if (args.length === 0) throw new UsageError('task needs a command: request, offer, accept, status, result, cancel');
        const a = needAgent();
        await a.start();
        await a.whenConnected(5000, 1);
        return await runTaskCommand(a, args, values, out);
      }
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    }
  } catch (err) {
    if (err instanceof UsageError || err instanceof TaskUsageError) {
      io.stderr.write(`roost agent: ${err.message}\n`);
      return 2;
    }
    const code = err instanceof ClientError ? err.code : 'error';
    if (values.json) io.stdout.write(JSON.stringify({ error: code, message: (err as Error).message }) + '\n');
    io.stderr.write(`roost agent: ${(err as Error).message} (${code})\n`);
    return 1;
  } finally {
    await (agent as Agent | undefined)?.close();
  }
}

type Out = (human: string, json: unknown) => void;

async function send(agent: Agent, args: string[], values: Values, out: Out): Promise<number> {
  const [to, ...words] = args;
  if (!to || words.length === 0) throw new UsageError('send needs <to> and a message');
  const recipient = parsePubkey(to);
  const text = words.join(' ');
  const timeoutMs = num(values.timeout, '--timeout', 30) * 1000;
  try {
    await agent.start();
  } catch (err) {
    if (!(err instanceof ClientError) || err.code !== 'ROOST_ERR_UNREACHABLE' || values.request) throw err;
    // No relay answered: say so now, but keep the message for the next run rather than waiting out the timeout.
    await agent.send(recipient, text, { timeoutMs: 1 }).catch((e: unknown) => {
      if (!(e instanceof ClientError) || e.code !== 'ROOST_ERR_TIMEOUT') throw e;
    });
    const causes = Object.entries(err.details.causes ?? {}).map(([relay, why]) => `${relay}: ${why}`);
    throw new ClientError('ROOST_ERR_UNREACHABLE', `no relay reachable (${causes.join('; ')}); the message is still in the outbox (roost agent outbox)`, {
      causes: err.details.causes ?? {},
    });
  }
  if (values.request) {
    const res = await agent.request(recipient, text, { timeoutMs });
    out(`${short(res.from)}: ${res.content}`, messageJson(res));
    return 0;
  }
  const { id, wrapId, result } = await agent.send(recipient, text, { timeoutMs });
  const relays = result?.relays ?? [];
  out(`sent ${id.slice(0, 12)}… to ${short(recipient)} (${relays.map((r) => r.relay).join(', ')})`, { id, wrapId, to: recipient, relays });
  return 0;
}

function messageJson(m: InboxMessage) {
  if (m.type === 'dm') {
    const { type, id, from, content, tags, createdAt, kind, wrapId, relay, seq, requestId, inReplyTo } = m;
    return { type, id, from, npub: getNpub(from), content, tags, createdAt, kind, wrapId, relay, seq, requestId, inReplyTo };
  }
  return { type: m.type, event: m.event, relay: m.relay, seq: m.seq };
}

function describeMessage(m: InboxMessage): string {
  if (m.type === 'dm') return `${new Date(m.createdAt * 1000).toISOString()} dm from ${short(m.from)}${m.requestId ? ' (request)' : ''}: ${m.content}`;
  const e = m.event;
  return `${new Date(e.created_at * 1000).toISOString()} kind ${e.kind} from ${short(e.pubkey)}: ${e.content.slice(0, 200)}`;
}

async function inbox(agent: Agent, values: Values, io: CliIo, out: Out): Promise<number> {
  const limit = num(values.limit, '--limit', Infinity);
  let count = 0;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  agent.onMessage((m) => {
    count++;
    out(describeMessage(m), messageJson(m));
    if (count >= limit) {
      // Stop before the next message: the cursor stays right after this one.
      void agent.stopInbox();
      resolveDone();
    }
  });
  const caught = new Set<string>();
  agent.on('caughtUp', (relay) => {
    caught.add(relay);
    if (!values.follow && caught.size === agent.relays.length) resolveDone();
  });
  await agent.start();
  const timeoutMs = num(values.timeout, '--timeout', 10) * 1000;
  const timer = values.follow ? undefined : setTimeout(resolveDone, timeoutMs);
  await Promise.race([done, io.interrupted ?? new Promise(() => undefined)]);
  clearTimeout(timer);
  await agent.inboxIdle();
  const missing = agent.relays.filter((r) => !caught.has(r));
  if (!values.follow && count < limit && missing.length > 0) {
    io.stderr.write(`roost agent: not caught up with ${missing.join(', ')} within ${timeoutMs / 1000} s\n`);
    return 1;
  }
  if (!values.json && count === 0) io.stderr.write('no new messages\n');
  return 0;
}

async function tail(agent: Agent, values: Values, io: CliIo, out: Out): Promise<number> {
  const limit = num(values.limit, '--limit', Infinity);
  const kinds = values.kind?.map((k) => num(k, '--kind', 0));
  const authors = values.author?.map(parsePubkey);
  const filter: Filter = { since: Math.floor(Date.now() / 1000) - 5 };
  if (kinds) filter.kinds = kinds;
  if (authors) filter.authors = authors;
  // Mail to a rotated-out key is still for this agent until its grace period ends (as the inbox reads it).
  const mine = agent.readKeys;
  if (!kinds && !authors) filter['#p'] = mine;
  let count = 0;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  await agent.start();
  const show = (ev: NostrEvent, relay: string) => {
    let m: InboxMessage = { type: 'event', event: ev, relay, seq: undefined };
    if (ev.kind === Kind.GiftWrap) {
      try {
        m = agent.openDirectMessage(ev, { relay });
      } catch {
        // not for us: shown as the bare event
      }
    }
    count++;
    out(describeMessage(m), messageJson(m));
    if (count >= limit) resolveDone();
  };
  // Gift wraps carry a blurred created_at, so they are tailed without `since`, from now on.
  const filters = [filter];
  if (!kinds && !authors) filters.push({ kinds: [Kind.GiftWrap], '#p': mine, limit: 0 });
  let eose = 0;
  const sub = agent.subscribe(filters, show, {
    onEose: () => {
      // The ready signal for scripts (also with --json, whose stdout stays JSON): subscribed on every relay.
      if (++eose === agent.relays.length) io.stderr.write(`tailing ${agent.relays.join(', ')} (Ctrl-C to stop)\n`);
    },
  });
  await Promise.race([done, io.interrupted ?? new Promise(() => undefined)]);
  sub.close();
  return 0;
}

/** Lists or purges the outbox from the agent's database, without connecting (e.g. after a mistyped relay URL). */
async function outbox(home: string, values: Values, ids: string[], out: Out): Promise<number> {
  const dbFile = join(home, 'agent.db');
  if (!existsSync(dbFile)) {
    out('outbox empty (no agent.db yet)', { entries: 0 });
    return 0;
  }
  const store = new SqliteAgentStore(dbFile);
  try {
    const entries = await store.outboxList();
    const wanted = entries.filter((e) => ids.length === 0 || ids.some((id) => e.event.id.startsWith(id.toLowerCase())));
    if (!values.purge) {
      if (entries.length === 0) out('outbox empty', { entries: 0 });
      for (const e of wanted) {
        const when = new Date(e.event.created_at * 1000).toISOString().slice(0, 19).replace('T', ' ');
        out(`${e.event.id}  kind ${e.event.kind}  ${when}  waiting for ${e.relays.join(' ')}`, {
          id: e.event.id,
          kind: e.event.kind,
          createdAt: e.event.created_at,
          relays: e.relays,
        });
      }
      return 0;
    }
    if (ids.length > 0 && wanted.length === 0) throw new UsageError(`no outbox entry matches ${ids.join(' ')}`);
    const only = values.relay?.map(normalizeRelayUrl);
    let dropped = 0;
    for (const e of wanted) {
      for (const relay of e.relays) {
        if (only && !only.includes(relay)) continue;
        await store.outboxSettle(e.event.id, relay);
        dropped++;
      }
    }
    out(`purged ${dropped} pending deliver${dropped === 1 ? 'y' : 'ies'}`, { purged: dropped });
    return 0;
  } finally {
    await store.close();
  }
}

async function discover(agent: Agent, values: Values, out: Out): Promise<number> {
  const min = values['min-reputation'];
  if (min !== undefined && !(Number(min) >= 0 && Number(min) <= 1)) throw new UsageError('--min-reputation must be a number from 0 to 1');
  await agent.start();
  await agent.whenConnected(5000, 1);
  // the caller's own card is not a peer it could ask
  const minReputation = min === undefined ? {} : { minReputation: Number(min) };
  const found: AgentInfo[] = (await agent.discover({ capabilities: values.capability ?? [], ...minReputation })).filter((a) => a.pubkey !== agent.pubkey);
  const nowSec = Math.floor(Date.now() / 1000);
  if (values.json) {
    for (const a of found) out('', a);
    return 0;
  }
  if (found.length === 0) {
    out('no agents found', {});
    return 0;
  }
  for (const a of found) {
    out(
      `${a.presence.padEnd(7)} ${a.name || '(no name)'}  ${short(a.pubkey)}  [${a.capabilities.join(', ')}]  v${a.version || '?'}  seen ${when(a.lastSeen, nowSec)}${a.wakeable ? '  wakeable' : ''}${a.reputation === undefined ? '' : `  reputation ${a.reputation.toFixed(2)}`}`,
      a,
    );
  }
  return 0;
}

/** `discover --local`: browses the LAN; needs no key and no relay. */
async function discoverOnLan(values: Values, out: Out): Promise<number> {
  const found = await discoverLocal({ waitMs: num(values.timeout, '--timeout', 2) * 1000 });
  if (values.json) {
    for (const r of found.relays) out('', { type: 'relay', url: r.url, pubkey: r.pubkey, name: r.name, address: r.address });
    for (const a of found.agents) out('', { type: 'agent', ...a });
    for (const r of found.rejected) out('', { type: 'rejected', service: r.type, name: r.name, address: r.address, reason: r.reason });
    return 0;
  }
  if (found.relays.length === 0 && found.agents.length === 0) out('nothing found on the local network', {});
  for (const r of found.relays) out(`relay   ${r.url}  ${short(r.pubkey)}  ${r.name}  (NIP-11 verified)`, r);
  for (const a of found.agents) out(`agent   ${short(a.pubkey)}  ${a.name}${a.relay ? `  via ${a.relay}` : ''}`, a);
  if (found.rejected.length > 0) out(`(${found.rejected.length} answer(s) rejected: ${found.rejected.map((r) => r.reason).join('; ')})`, {});
  return 0;
}

/** Entry for `roost agent` from cli/main.ts. */
export async function main(argv: string[]): Promise<void> {
  const interrupted = new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
  process.exitCode = await runAgentCli(argv, { stdout: process.stdout, stderr: process.stderr, env: process.env, interrupted });
}
