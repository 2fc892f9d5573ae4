import { compileFilter, type Filter, matchCompiled } from '../../shared/filter.js';
import { makeReason } from '../../shared/reason.js';
import type { RejectEvent } from './types.js';

/**
 * Refuses a replicated event outside the replica's `replicateFilter` (an upstream sends what the
 * filter asks for, but the replica does not take its word for it). Events from clients pass.
 */
export function rejectOutsideReplicateFilter(filter: Filter): RejectEvent | undefined {
  if (Object.keys(filter).length === 0) return undefined;
  const compiled = compileFilter(filter);
  return function rejectOutsideReplicateFilter(ev, ctx) {
    if (!ctx.replicated || matchCompiled(compiled, ev)) return undefined;
    return makeReason('blocked', 'outside the replication filter of this relay');
  };
}
