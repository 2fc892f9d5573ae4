import { homedir } from 'node:os';
import { join } from 'node:path';
import { createAgent, type Agent, type AgentOptions, type KeySource } from '../agent.js';
import { setDefaultCrypto } from '../crypto.js';
import { identityDocs } from '../identity-docs.js';
import { adoptKeyStep } from '../key-step.js';
import { loadOrCreateKeyFile } from './key-file.js';
import { isRotationDue, openKeyRing, readRetiredKeys, readRotationInterval, revokeKeyRing, rotateKeyRing } from './key-ring.js';
import { SqliteAgentStore } from './sqlite-store.js';
import { wasmCrypto } from './wasm-crypto.js';
import { NodeWebSocket } from './websocket.js';

/**
 * Node entry of the agent client: everything from client/index.ts plus the `ws` WebSocket, key
 * files (mode 0600) and the SQLite store. Kept apart so the browser bundle never pulls node:fs.
 */
export * from '../index.js';
export { loadKeyFile, loadOrCreateKeyFile, saveKeyFile } from './key-file.js';
export { adoptKeyStep } from '../key-step.js';
export { identityDocs, makeIdentityMembershipEvent, migrateToIdentityDoc } from '../identity-docs.js';
export {
  isRotationDue,
  type KeyRing,
  openKeyRing,
  parseRotationInterval,
  readRetiredKeys,
  readRotationInterval,
  revokeKeyRing,
  rotateKeyRing,
  saveRotationInterval,
} from './key-ring.js';
export { SqliteAgentStore, type SqliteAgentStoreOptions } from './sqlite-store.js';
export { wasmCrypto } from './wasm-crypto.js';
export {
  discoverLocal,
  LocalDiscovery,
  type LocalAgent,
  type LocalDiscoveryEvents,
  type LocalDiscoveryOptions,
  type LocalRelay,
  type RejectedAnswer,
} from './local-discovery.js';

// In Node, identities sign and verify with WebAssembly (tiny-secp256k1): 10-30x faster than pure JS.
setDefaultCrypto(wasmCrypto);

export { describeRefusedUpgrade, NodeWebSocket } from './websocket.js';

/** Default agent home: $ROOST_AGENT_HOME is read by the CLI only; library callers pass `home`. */
export function defaultAgentHome(): string {
  return join(homedir(), '.roost');
}

/** Options of {@link createNodeAgent}: an agent home folder instead of identity and store. */
export interface NodeAgentOptions extends Omit<AgentOptions, 'identity' | 'store' | 'WebSocket'> {
  /** Folder holding `agent.key` (mode 0600) and `agent.db`; default ~/.roost. */
  home?: string;
  /** Key file path (default `<home>/agent.key`); created when missing. A key file named here has no key event log. */
  keyFile?: string;
  /**
   * Open the key ring in `home` (default true unless `identity` or `keyFile` is given): the key event log
   * (created with an inception on first use), the next key apart, the rotated-out keys (docs/identity.md).
   */
  keyRing?: boolean;
  /** Grace period (seconds) an inception created now declares; default 7 days. */
  grace?: number;
  /**
   * Rotate the key when the log's head is older than this many seconds (0: never; absent: the interval kept
   * in the home's `agent.rotation.json` by `roost agent rotate --every`, else never; the mesh designs ask for
   * 7–30 days). Checked when the agent is created: a long-running agent rotates at its next start.
   */
  rotationIntervalSeconds?: number;
  /** Database path (default `<home>/agent.db`). */
  dbFile?: string;
  /**
   * `full` (default): every store write is fsynced, so what the agent holds survives a power loss.
   * `normal`: it survives a crash of the process but not of the machine; a lone direct message then
   * costs ~0.3 ms instead of ~2 ms (docs/direct.md).
   */
  durability?: 'full' | 'normal';
  WebSocket?: AgentOptions['WebSocket'];
  identity?: AgentOptions['identity'];
}

/** An agent with a key file and a SQLite store in its home folder, over `ws` (not started). */
export function createNodeAgent(opts: NodeAgentOptions): Agent {
  const home = opts.home ?? defaultAgentHome();
  const useRing = opts.keyRing ?? (opts.identity === undefined && opts.keyFile === undefined);
  if (useRing) {
    let ring = openKeyRing(home, opts.grace === undefined ? {} : { grace: opts.grace });
    const every = opts.rotationIntervalSeconds ?? readRotationInterval(home) ?? 0;
    if (isRotationDue(ring, every, Math.floor(Date.now() / 1000))) ring = rotateKeyRing(home).ring;
    const store = new SqliteAgentStore(opts.dbFile ?? join(home, 'agent.db'), { synchronous: opts.durability ?? 'full' });
    const keyLog = { events: ring.events, retired: readRetiredKeys(home, ring) };
    // agent.rotate() / revoke() take the step on disk first (fsynced), then switch the running agent to it.
    const keySource: KeySource = {
      rotate: () => {
        const { ring: after, event } = rotateKeyRing(home);
        return { event, current: after.current };
      },
      revoke: (reason) => {
        const { ring: after, event } = revokeKeyRing(home, reason === undefined ? {} : { reason });
        return { event, current: after.current };
      },
      adopt: adoptKeyStep,
    };
    return createAgent({ identityDocs, ...opts, identity: ring.current, keyLog, keySource, store, WebSocket: opts.WebSocket ?? NodeWebSocket });
  }
  const identity = opts.identity ?? loadOrCreateKeyFile(opts.keyFile ?? join(home, 'agent.key')).identity;
  const store = new SqliteAgentStore(opts.dbFile ?? join(home, 'agent.db'), { synchronous: opts.durability ?? 'full' });
  return createAgent({ identityDocs, ...opts, identity, store, WebSocket: opts.WebSocket ?? NodeWebSocket });
}
