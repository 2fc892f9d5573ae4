import type { Filter } from '../../shared/filter.js';
import { filterSchema } from '../../shared/messages/schema.js';
import { RoostError } from '../config.js';
import type { RelayContext } from '../context.js';
import { Replicator, type ReplicatorOptions } from './replicator.js';

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
  const replicators = urls.map(
    (url) =>
      new Replicator({
        url,
        filter,
        store: ctx.store,
        verifier: ctx.verifier,
        log: ctx.log,
        ...(secretKey ? { secretKey } : {}),
        onOrigin: (pubkey) => {
          ctx.replicationOrigins.add(pubkey);
          // A connection that authenticated as that relay before its key was known.
          for (const conn of ctx.connections) if (conn.authed.has(pubkey)) conn.peerRelay = pubkey;
        },
        now: ctx.now,
        firstSync: ctx.config.replicateFirstSync,
        negentropyMaxRecords: ctx.config.negentropyMaxRecords || 500_000,
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
