#!/usr/bin/env node
// Builds the optional native Schnorr verifier (native/schnorr.c over libsecp256k1) with node-gyp.
// Run by the package's `install` script, so `npm ci` / `npm install` build it (here and in projects that depend on it). When the library
// or a compiler is missing it explains and exits 0: the relay then verifies with WebAssembly.
// `--strict` turns every skip or failure into exit 1 (for CI jobs that must have the native path).
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const strict = process.argv.includes('--strict');
const APT_HINT = 'apt-get install -y libsecp256k1-dev   (Debian 12 bookworm and later ship the schnorrsig module)';

function skip(why) {
  console.log(`roost: native signature verifier not built: ${why}`);
  console.log('roost: the relay will verify with WebAssembly (tiny-secp256k1) instead, which is slower.');
  process.exit(strict ? 1 : 0);
}

function findHeader() {
  const dirs = ['/usr/include', '/usr/local/include', '/opt/homebrew/include'];
  for (const v of [process.env.CPATH, process.env.C_INCLUDE_PATH]) if (v) dirs.unshift(...v.split(':').filter(Boolean));
  return dirs.find((d) => existsSync(join(d, 'secp256k1_schnorrsig.h')));
}

function findNodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  try {
    candidates.push(createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js'));
  } catch {
    // not installed locally; npm's bundled copy is the usual one
  }
  return candidates.find((c) => c && existsSync(c));
}

// Headers of the running Node, so node-gyp never downloads them (CI has no network beyond npm and Debian).
function findNodeDir() {
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  const prefix = join(dirname(process.execPath), '..');
  return existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined;
}

// Never fails an install (exit 0) unless --strict: a consumer of the package needs no compiler, and npm 11 runs
// this only when the consumer allows Roost's install script; without it the relay verifies with WebAssembly.
function build() {
  const header = findHeader();
  if (!header) skip(`secp256k1_schnorrsig.h not found (install it with: ${APT_HINT})`);
  const nodeGyp = findNodeGyp();
  if (!nodeGyp) skip('node-gyp not found (it is bundled with npm)');

  const args = [nodeGyp, 'rebuild', '--directory', here];
  const nodedir = findNodeDir();
  if (nodedir) args.push(`--nodedir=${nodedir}`);
  const r = spawnSync(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  if (r.status !== 0) {
    process.stderr.write(r.stdout ?? '');
    process.stderr.write(r.stderr ?? '');
    rmSync(join(here, 'build'), { recursive: true, force: true });
    skip(`node-gyp failed (exit ${r.status ?? r.signal}); output above`);
  }

  // Load it once here so a broken build is reported now rather than discovered at relay start.
  const addonPath = join(here, 'build', 'Release', 'roost_schnorr.node');
  try {
    const addon = createRequire(import.meta.url)(addonPath);
    if (typeof addon.verifyBatch !== 'function') throw new Error('verifyBatch missing');
  } catch (err) {
    rmSync(join(here, 'build'), { recursive: true, force: true });
    skip(`the built addon does not load: ${err.message}`);
  }
  console.log(`roost: native signature verifier built (${addonPath}, libsecp256k1 headers in ${header})`);
}

try {
  build();
} catch (err) {
  skip(`unexpected failure: ${err?.message ?? err}`);
}
