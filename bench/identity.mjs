#!/usr/bin/env node
// Key event log benchmark alone (docs/identity.md): the identity workload of `npm run bench`
// (bench/workloads/identity.mjs) with its own sizes.
//
//   npm run build && node bench/identity.mjs [--runs 5] [--events 64] [--cards 10000]
import { identityLines, runIdentity } from './workloads/identity.mjs';

function option(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] !== undefined ? Number(process.argv[i + 1]) : dflt;
}
try {
  const r = await runIdentity({ runs: option('runs', 5), events: option('events', 64), cards: option('cards', 10_000) });
  for (const line of identityLines(r)) console.log(line);
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
}
