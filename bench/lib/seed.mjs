// Pre-loaded relays for the query and backfill workloads. The database is built once per relay kind,
// corpus and store code, kept in .bench-cache/snapshots/, and copied into each fresh relay's folder;
// loading is never measured. A relay given by URL is loaded through the socket on every run.
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runIngest } from '../workloads/ingest.mjs';
import { CACHE_DIR } from './corpus.mjs';
import { releaseDir, resolveSpec, startRelay } from './relay-process.mjs';

function hashTree(hash, root, path) {
  const full = join(root, path);
  if (!existsSync(full)) return hash.update(`missing:${path}`);
  if (statSync(full).isDirectory()) {
    for (const name of readdirSync(full).sort()) hashTree(hash, root, join(path, name));
  } else {
    hash.update(path).update(readFileSync(full));
  }
  return hash;
}

/** Keeps the `keep` newest complete snapshots of a relay kind and corpus (`name` = kind-corpus); each can be hundreds of MB. */
function pruneSnapshots(name, keep) {
  const root = join(CACHE_DIR, 'snapshots');
  const mine = readdirSync(root)
    .filter((d) => d.startsWith(`${name}-`))
    .map((d) => ({ d, t: existsSync(join(root, d, 'complete')) ? statSync(join(root, d, 'complete')).mtimeMs : 0 }))
    .sort((a, b) => b.t - a.t);
  for (const { d } of mine.slice(keep)) rmSync(join(root, d), { recursive: true, force: true });
}

async function publishAll(url, events, log) {
  const r = await runIngest(url, events, { connections: 8, window: 64, timeoutMs: 600_000 });
  const duplicates = Object.entries(r.reasons)
    .filter(([k]) => k.startsWith('duplicate'))
    .reduce((n, [, v]) => n + v, 0);
  log(`  pre-loaded ${r.accepted}/${events.length} events through the socket in ${r.seconds.toFixed(1)} s`);
  if (r.timedOut || r.answered !== events.length) throw new Error(`pre-load: only ${r.answered} of ${events.length} events answered`);
  return { rejected: r.rejected - duplicates, duplicates, reasons: r.reasons };
}

/**
 * Starts `spec` holding the store corpus (`relayOptions` go to startRelay, e.g. `nodeArgs`). Resolves with the relay handle plus `seeded` notes
 * (`{ snapshot: 'reused' | 'built' | 'none', rejected, duplicates }`).
 */
export async function startSeeded(spec, corpus, { log = () => {}, snapshots = true, relayOptions = {} } = {}) {
  const spawnable = resolveSpec(spec);
  if (!spawnable) {
    const relay = await startRelay(spec);
    const r = await publishAll(relay.url, corpus.events, log);
    if (r.duplicates) log(`  note: ${relay.label} already held ${r.duplicates} of these events (restart it empty for clean figures)`);
    return { ...relay, seeded: { snapshot: 'none', ...r } };
  }
  const { name, kind, root, label } = spawnable;
  const code = createHash('sha256');
  for (const f of kind.codeFiles) hashTree(code, root, f);
  const key = `${kind.snapshotAs ?? name}-${corpus.key}-${code.digest('hex').slice(0, 12)}`;
  const dir = join(CACHE_DIR, 'snapshots', key);
  if (snapshots && existsSync(join(dir, 'complete'))) {
    return { ...(await startRelay(spec, { ...relayOptions, dbFrom: dir })), seeded: { snapshot: 'reused', rejected: 0, duplicates: 0 } };
  }
  log(`  building ${label} pre-loaded database (${corpus.events.length} events; once per corpus and store code)…`);
  const t0 = performance.now();
  let result = { rejected: 0, duplicates: 0 };
  let builder;
  if (kind.preloadEnv) {
    builder = await startRelay(spec, { env: kind.preloadEnv(corpus.file), startTimeoutMs: 600_000 });
  } else {
    builder = await startRelay(spec, { env: kind.seedEnv ?? {} });
    result = await publishAll(builder.url, corpus.events, log);
  }
  const built = await builder.stop({ keep: true });
  releaseDir(built);
  if (result.rejected) {
    rmSync(built, { recursive: true, force: true });
    throw new Error(`${label} rejected ${result.rejected} pre-load events: ${JSON.stringify(result.reasons)}`);
  }
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const f of readdirSync(built)) if (f.startsWith('relay.db')) cpSync(join(built, f), join(dir, f));
  rmSync(built, { recursive: true, force: true });
  writeFileSync(join(dir, 'complete'), `${new Date().toISOString()}\n`);
  pruneSnapshots(`${kind.snapshotAs ?? name}-${corpus.key}`, 2);
  log(`  built in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const relay = await startRelay(spec, { ...relayOptions, dbFrom: dir });
  if (!snapshots) rmSync(dir, { recursive: true, force: true });
  return { ...relay, seeded: { snapshot: snapshots ? 'built' : 'none', ...result } };
}
