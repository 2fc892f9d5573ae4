#!/usr/bin/env node
// Bundles the browser-safe agent client (client/index.ts) into one ES module and prints its size.
// Usage: node scripts/bundle-client.mjs [--out dist/browser/roost-client.js] [--json]
import { gzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import { build } from 'esbuild';

const args = process.argv.slice(2);
const outIdx = args.indexOf('--out');
const outfile = outIdx >= 0 ? args[outIdx + 1] : 'dist/browser/roost-client.js';

const result = await build({
  entryPoints: ['client/index.ts'],
  outfile,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  minify: true,
  sourcemap: true,
  metafile: true,
  legalComments: 'none',
  logLevel: 'warning',
});

const code = readFileSync(outfile);
const gzip = gzipSync(code, { level: 9 }).length;
// Bytes per package (or per top folder of this repository), to see what the bundle is made of.
const output = Object.entries(result.metafile.outputs).find(([k]) => k.endsWith('.js'))[1];
const owner = (path) => {
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
  return m ? m[1] : path.split('/')[0];
};
const inputs = new Map();
for (const [path, v] of Object.entries(output.inputs)) inputs.set(owner(path), (inputs.get(owner(path)) ?? 0) + v.bytesInOutput);
const top = [...inputs].sort((a, b) => b[1] - a[1]).slice(0, 8);
if (args.includes('--json')) {
  process.stdout.write(JSON.stringify({ outfile, bytes: code.length, gzip, top: Object.fromEntries(top) }) + '\n');
} else {
  process.stdout.write(`${outfile}: ${(code.length / 1024).toFixed(1)} KiB minified, ${(gzip / 1024).toFixed(1)} KiB gzipped\n`);
  for (const [k, n] of top) process.stdout.write(`  ${String(k).padEnd(40)} ${(n / 1024).toFixed(1)} KiB\n`);
}
