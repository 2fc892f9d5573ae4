// The conformance CLI imports `globSync` from node:fs (Node 22+) for its tier-check command only;
// on Node 20 that import fails at load. This stands in for node:fs in that package alone.
import fs from 'node:fs';

export * from 'node:fs';
export default fs;

/** Not used by `conformance server`. */
export function globSync() {
  throw new Error('globSync needs Node 22 (only the tier-check command uses it)');
}
