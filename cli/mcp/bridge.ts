import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ClientError, createNodeAgent, loadOrCreateKeyFile, parsePubkey, type Agent, type AgentInfo } from '../../client/node/index.js';
import { Mailbox } from './mailbox.js';

/** Where the bridge's agent lives and what it connects to. */
export interface BridgeOptions {
  /** The agent home shared with `roost agent --home`: agent.key, agent.db, and the bridge's mcp.db. */
  home: string;
  relays: string[];
  /** Structured log lines (stderr in the CLI: stdout is the protocol channel in stdio mode). */
  log: (level: 'info' | 'warn' | 'debug', msg: string, fields?: Record<string, unknown>) => void;
}

/**
 * One agent behind every MCP session: the client library's agent (identity, outbox, inbox with its
 * per-relay cursors and durable rumor-id de-duplication) feeding the bridge's durable mailbox.
 */
export class Bridge {
  readonly agent: Agent;
  readonly mailbox: Mailbox;
  readonly home: string;
  /** The key file was created now (a new identity). */
  readonly keyCreated: boolean;
  readonly #listeners = new Set<() => void>();
  readonly #names = new Map<string, string>();
  readonly #caughtUp: Promise<void>;
  #startup: Promise<boolean> | undefined;

  constructor(opts: BridgeOptions) {
    this.home = opts.home;
    const key = loadOrCreateKeyFile(join(opts.home, 'agent.key'));
    this.keyCreated = key.created;
    // A home with a key event log (`roost agent identity|rotate`) runs on its key ring, as `roost agent` does: the
    // log is published, mail to retired keys is read during their grace period, and the task tools know every key
    // of the log as this agent's. A bare key stays a bare key.
    const ring = existsSync(join(opts.home, 'agent.kel.jsonl')) ? { keyRing: true } : { identity: key.identity };
    this.agent = createNodeAgent({ home: opts.home, relays: opts.relays, ...ring });
    this.mailbox = new Mailbox(join(opts.home, 'mcp.db'));
    // Committed to mcp.db before this returns, hence before the agent moves the relay's cursor.
    this.agent.onMessage((m) => {
      if (this.mailbox.add(m, Date.now())) {
        opts.log('debug', 'mail', { id: (m.type === 'dm' ? m.id : m.event.id).slice(0, 16) });
        for (const fn of this.#listeners) fn();
      }
    });
    const caught = new Set<string>();
    this.#caughtUp = new Promise((resolve) => {
      this.agent.on('caughtUp', (relay) => {
        caught.add(relay);
        if (caught.size === this.agent.relays.length) resolve();
      });
    });
    const told = new Set<string>();
    this.agent.on('disconnected', (relay, reason) => {
      if (reason === 'closed by the client' || told.has(`${relay} ${reason}`)) return;
      told.add(`${relay} ${reason}`);
      opts.log('warn', 'relay unreachable (retrying)', { relay, reason });
    });
    this.agent.on('ready', (relay) => opts.log('info', 'relay ready', { relay }));
    this.agent.on('error', (err) => opts.log('warn', 'agent error', { code: (err as ClientError).code, message: err.message }));
  }

  /**
   * Starts the agent: outbox restored, inbox resumed from its cursors, relays connecting. It does not
   * wait for a relay: the host's handshake must not hang on a relay that is down (the links retry,
   * sends wait in the outbox, and each cause is logged).
   */
  async start(): Promise<void> {
    await this.agent.start({ waitForRelay: false });
  }

  /**
   * Resolves once every relay's backlog was handed over, or once `timeoutMs` passed since the first
   * call (a relay that is down delays the first `inbox` after a start, not every one).
   */
  whenCaughtUp(timeoutMs: number): Promise<boolean> {
    this.#startup ??= new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      void this.#caughtUp.then(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    return this.#startup;
  }

  /** Calls `fn` after each new message is committed; returns the unsubscribe function. */
  onMail(fn: () => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Resolves once new mail arrives or `timeoutMs` passes. */
  waitForMail(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      const off = this.onMail(done);
      function done() {
        clearTimeout(timer);
        off();
        resolve();
      }
    });
  }

  /** The card name seen for a pubkey in a discovery, if any. */
  nameOf(pubkey: string): string | undefined {
    return this.#names.get(pubkey);
  }

  /** Discovers agents (self excluded) and remembers their names. */
  async discover(capabilities: readonly string[]): Promise<AgentInfo[]> {
    await this.agent.whenConnected(5000, 1);
    const found = (await this.agent.discover({ capabilities })).filter((a) => a.pubkey !== this.agent.pubkey);
    for (const a of found) if (a.name) this.#names.set(a.pubkey, a.name);
    return found;
  }

  /** An npub, nostr: URI, hex key, or the name on exactly one agent card → hex pubkey. */
  async resolveRecipient(to: string): Promise<string> {
    try {
      return parsePubkey(to);
    } catch {
      // not a key: try it as a card name
    }
    const wanted = to.trim().toLowerCase();
    const matches = (await this.discover([])).filter((a) => a.name.trim().toLowerCase() === wanted);
    if (matches.length === 1) return matches[0]!.pubkey;
    if (matches.length === 0)
      throw new ClientError(
        'ROOST_ERR_BAD_INPUT',
        `"${to}" is neither an npub/hex key nor the name of an agent card on the relays; use discover to find agents`,
      );
    throw new ClientError('ROOST_ERR_BAD_INPUT', `several agents are named "${to}" (${matches.map((m) => m.npub).join(', ')}); pass the npub instead`);
  }

  /** Last heartbeat (asleep/offline), outbox kept, databases closed. */
  async close(): Promise<void> {
    await this.agent.close();
    this.mailbox.close();
  }
}
