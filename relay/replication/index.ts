import type { NostrEvent } from '../../shared/event.js';
import type { Filter } from '../../shared/filter.js';
import { getPublicKey } from 'nostr-tools/pure';
import { filterSchema } from '../../shared/messages/schema.js';
import { RoostError } from '../config.js';
import type { RelayContext } from '../context.js';
import { rejectOutsideReplicateFilter } from '../policies/replication.js';
import { firstEventRejection, type PolicyContext } from '../policies/types.js';
import { Replicator, type ReplicatorOptions } from './replicator.js';
import { isPending } from '../store/types.js';

/** The replicators of a relay, one per configured upstream. */
export interface Replication {
  readonly replicators: readonly Replicator[];
  /** Stops every link and waits for what they delivered to commit. */
  close(): Promise<void>;
}

/** Parses `replicateFilter` (validated by the config schema as a JSON object) into a filter without seq fields. */
export function parseReplicateFilter(text: string): Filter {
  if (text === '') return {};
  const r = filterSchema.safeParse(JSON.parse(text));
  if (!r.success) throw new RoostError('ROOST_ERR_CONFIG', `ROOST_REPLICATE_FILTER / --replicate-filter: ${r.error.issues[0]?.message ?? 'not a filter'}`);
  const f = r.data as Filter;
  if (f.seq_after !== undefined || f.seq_until !== undefined || f.limit !== undefined) {
    throw new RoostError('ROOST_ERR_CONFIG', 'ROOST_REPLICATE_FILTER / --replicate-filter: seq_after, seq_until and limit are set by replication');
  }
  return f;
}

/** Counts a refused replicated event by its NIP-01 reason prefix (`roost_replication_refused_total{reason}`). */
function countReplicationRefusal(ctx: RelayContext, reason: string): void {
  const prefix = reason.slice(0, Math.max(0, reason.indexOf(':'))) || 'other';
  ctx.stats.replicationRefused.set(prefix, (ctx.stats.replicationRefused.get(prefix) ?? 0) + 1);
}

/** Starts a replicator per `replicateFrom` upstream (none when it is empty). */
export function startReplication(
  ctx: RelayContext,
  secretKey: Uint8Array | undefined,
  deps: Partial<Pick<ReplicatorOptions, 'backoffMs' | 'WebSocketImpl' | 'fetchImpl'>> = {},
): Replication {
  const urls = ctx.config.replicateFrom
    .split(',')
    .map((u) => u.trim())
    .filter((u) => u !== '');
  const filter = parseReplicateFilter(ctx.config.replicateFilter);
  const store = ctx.store.provides.replication;
  if (urls.length > 0 && !store) {
    throw new RoostError('ROOST_ERR_CONFIG', 'ROOST_REPLICATE_FROM: this store keeps no replication cursors');
  }
  const outside = rejectOutsideReplicateFilter(filter);
  if (urls.length > 0 && outside) ctx.hooks.rejectEvent.push(outside);
  const noAuth: ReadonlySet<string> = new Set();
  const self = secretKey ? getPublicKey(secretKey) : undefined;
  // The relay's own policy hooks decide, in the replicated context (policies/types.ts): one set of rules.
  const admit = (event: NostrEvent) => {
    const policyCtx: PolicyContext = { authed: noAuth, ip: '', now: ctx.now(), replicated: true };
    const verdict = firstEventRejection(ctx.hooks.rejectEvent, event, policyCtx);
    // Replication runs only on SQLite (the store must provide it), where every hook answers at once.
    if (verdict instanceof Promise) throw new RoostError('ROOST_ERR_CONFIG', 'replication needs policies that answer synchronously');
    return verdict;
  };
  const replicators = urls.map(
    (url) =>
      new Replicator({
        url,
        filter,
        store: store!,
        verifier: ctx.verifier,
        log: ctx.log,
        ...(secretKey ? { secretKey } : {}),
        onOrigin: (pubkey) => {
          if (pubkey === self || ctx.replicationOrigins.has(pubkey)) return;
          ctx.replicationOrigins.add(pubkey);
          const recorded = store?.recordReplicationPeer(pubkey);
          if (isPending(recorded)) recorded.catch((err) => ctx.log.warn({ err, peer: pubkey }, 'replication peer not recorded'));
          // A connection that authenticated as that relay before its key was known.
          for (const conn of ctx.connections) if (conn.authed.has(pubkey)) conn.peerRelay = pubkey;
        },
        now: ctx.now,
        firstSync: ctx.config.replicateFirstSync,
        negentropyMaxRecords: ctx.config.negentropyMaxRecords || 500_000,
        admit,
        onRefused: (reason) => countReplicationRefusal(ctx, reason),
        onDuplicate: () => ctx.stats.replicationDuplicates++,
        ...deps,
      }),
  );
  for (const r of replicators) r.start();
  return {
    replicators,
    async close() {
      await Promise.all(replicators.map((r) => r.close()));
    },
  };
}
